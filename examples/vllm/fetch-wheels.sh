#!/usr/bin/env bash
# The wheels the vLLM image installs with --no-deps, into examples/vllm/wheels/ (ignored by git): vLLM's
# for each version asked for (default: every value of the matrix's `vllm` axis) and xgrammar's:
#   bash examples/vllm/fetch-wheels.sh [VERSION...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
    # The axis' values, read from the matrix with the YAML parser the harness uses.
    mapfile -t versions < <(python3 -c 'import sys, yaml; print("\n".join(map(str, yaml.safe_load(open(sys.argv[1]))["axes"]["vllm"])))' "$here/matrix.yaml")
else
    versions=("$@")
fi
for version in "${versions[@]}"; do
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$here/wheels" "vllm==$version"
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$here/wheels" xgrammar==0.2.8
