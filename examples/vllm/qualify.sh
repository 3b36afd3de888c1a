#!/usr/bin/env bash
# Qualify one vLLM release's communicators and write the record:
#   bash examples/vllm/qualify.sh RECORD_DIR VERSION [PYTHON]
#
# Runs the cells of examples/vllm/matrix.yaml whose `vllm` axis is VERSION (or those CELLS names; EXECUTOR, default auto: in that
# version's image when it is built; otherwise on the host with PYTHON, an interpreter with vLLM VERSION
# installed, docs/qualifying.md "Qualifying vLLM"), then keeps in RECORD_DIR what the record needs: the run's summary,
# its merged JUnit XML, each cell's cell.json, fingerprint.json and log.txt, and conformance.md generated from
# the JUnit XML. The results directory is kept (RECORD_DIR/results), so the log paths the run prints stay valid.
# Exit code: the run's (0 when every cell passed, known gaps holding as strict xfails).
set -uo pipefail
record=${1:?usage: qualify.sh RECORD_DIR VERSION [PYTHON]}
version=${2:?usage: qualify.sh RECORD_DIR VERSION [PYTHON]}
python=${3:-python3}
executor=${EXECUTOR:-auto}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$record"
results="$record/results"

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
"$python" -m harness.commands.cli run "$repo/examples/vllm/matrix.yaml" --executor "$executor" --jobs 1 \
    --cell "${CELLS:-*-vllm-$version}" --out "$results"
status=$?

cp "$results"/summary.json "$results"/summary.md "$results"/junit.xml "$record"/
for cell in "$results"/*/; do
    name=$(basename "$cell")
    mkdir -p "$record/$name"
    for file in cell.json log.txt work/fingerprint.json fingerprint.json; do
        [ -f "$cell/$file" ] && cp "$cell/$file" "$record/$name"/
    done
done
"$python" -m harness.commands.cli conformance "$results" --out "$record/conformance.md" \
    --title "vLLM $version communicators: comm-harness conformance"
exit $status
