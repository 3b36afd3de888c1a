#!/usr/bin/env bash
# One call on a lent H200 machine (the device tool): the cuda cells of matrix.yaml on the local executor,
# the plugin's overhead on CUDA, and the bench at every world size the GPUs allow. Everything lands in one
# tarball under $OUT (the tool brings back at most 8 files). The machine has no network and no Docker:
# pytest 8 / pytest-forked / jsonschema travel as wheels in .whl/ (see qualification/README.md).
set -uo pipefail
out=${OUT:-/tmp/h200-out}
work=/tmp/h200
rm -rf "$work" && mkdir -p "$work" "$out"
# NVLink multicast must stay off on these shared hosts, in every process the run starts.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
# The benchmarks/ scripts import the packages from the checkout, as `python3 -m` does.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site:$PYTHONPATH PATH=/tmp/site/bin:$PATH
fi
gpus=$(nvidia-smi -L | wc -l)
nvidia-smi > "$work/nvidia-smi.txt"
echo "== $gpus GPUs; cuda cells"
python3 -m harness.commands.cli run matrix.yaml --cell 'cuda*' --executor local --out "$work/cells" > "$work/cells.log" 2>&1
echo "cells exit code $?"
grep -v " PASSED " "$work/cells.log" | tail -25
# PLUGIN_OVERHEAD=0 and BENCH_WORLD_SIZES="4" trim the run to what a short device budget allows.
if [ "${PLUGIN_OVERHEAD:-1}" = 1 ]; then
    echo "== plugin overhead, world size $gpus"
    python3 benchmarks/harness/plugin_overhead.py --device cuda --world-size "$gpus" --no-mptc --fork-tests 5 \
        --json "$work/plugin_overhead-cuda-ws$gpus.json" 2>&1 | tail -12
fi
for ws in ${BENCH_WORLD_SIZES:-2 4 8}; do
    [ "$ws" -le "$gpus" ] || continue
    echo "== bench, world size $ws"
    timeout ${BENCH_TIMEOUT_S:-200} python3 -m harness.commands.cli bench --device cuda --world-size "$ws" \
        --json "$work/bench-cuda-ws$ws.json" --plot "$work/bench-cuda-ws$ws.png" > "$work/bench-ws$ws.log" 2>&1
    echo "bench exit code $?"
    tail -30 "$work/bench-ws$ws.log"
done
# Host time per call, raw torch.distributed against the communicator (what the overhead rows come from),
# and the same without a collective behind it (the Python alone); HOST_OVERHEAD=0 leaves them out.
if [ "${HOST_OVERHEAD:-1}" = 1 ] && [ "$gpus" -ge 2 ]; then
    echo "== host time per call, world size 2"
    timeout 120 python3 benchmarks/communicators/bench_host_overhead.py --device cuda --world-size 2 \
        > "$work/host_overhead-ws2.txt" 2>&1
    echo "host overhead exit code $?"
    timeout 60 python3 benchmarks/communicators/bench_python_cost.py > "$work/python_cost.txt" 2>&1
    tail -5 "$work/python_cost.txt"
fi
# Uneven collectives three ways (benchmarks/communicators/bench_findings.md): the data a size threshold would need.
if [ "${GATHERV_STRATEGIES:-1}" = 1 ] && [ "$gpus" -ge 2 ]; then
    echo "== uneven collectives three ways, world size $gpus"
    timeout 200 python3 benchmarks/communicators/bench_gatherv_strategies.py --device cuda --world-size "$gpus" \
        > "$work/gatherv_strategies-ws$gpus.txt" 2>&1
    echo "gatherv strategies exit code $?"
fi
tar czf "$out/h200.tgz" -C "$work" .
