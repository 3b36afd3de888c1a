#!/usr/bin/env bash
# Qualify vLLM's communicators and write the record: bash examples/vllm/qualify.sh RECORD_DIR [PYTHON]
#
# Runs examples/vllm/matrix.yaml (EXECUTOR, default auto: in the vLLM image when it is built, see the
# matrix; otherwise on the host with PYTHON, an interpreter with vLLM installed, README "Qualifying vLLM"),
# then keeps in RECORD_DIR what the record needs: the run's summary, its merged JUnit XML, each cell's
# cell.json and fingerprint.json, and conformance.md generated from the JUnit XML.
# Exit code: the run's (0 when every cell passed, known gaps holding as strict xfails).
set -uo pipefail
record=${1:?usage: qualify.sh RECORD_DIR [PYTHON]}
python=${2:-python3}
executor=${EXECUTOR:-auto}
repo=$(cd "$(dirname "$0")/../.." && pwd)
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
"$python" -m harness.cli run "$repo/examples/vllm/matrix.yaml" --executor "$executor" --jobs 1 --out "$results"
status=$?

mkdir -p "$record"
cp "$results"/summary.json "$results"/summary.md "$results"/junit.xml "$record"/
for cell in "$results"/*/; do
    name=$(basename "$cell")
    mkdir -p "$record/$name"
    cp "$cell"/cell.json "$cell"/fingerprint.json "$record/$name"/ 2>/dev/null
done
# The version the cells ran, as their fingerprints recorded it (in the image, or PYTHON's).
version=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("vllm") or "?")' \
    "$(ls "$record"/*/fingerprint.json | head -1)")
"$python" -m harness.conformance_table "$results" --out "$record/conformance.md" \
    --title "vLLM $version communicators: comm-harness conformance"
exit $status
