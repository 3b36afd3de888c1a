#!/usr/bin/env bash
# The two wheels the vLLM image installs with --no-deps, into examples/vllm/wheels/ (ignored by git):
#   bash examples/vllm/fetch-wheels.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$here/wheels" vllm==0.33.0 xgrammar==0.2.8
