#!/usr/bin/env bash
# Issue 40's proof, in one call on a lent GPU machine (the device tool), which has a GPU and its driver but
# no NVIDIA container runtime, no Docker, no registry and no network:
#   1. start Debian's Docker engine packed by ../shared/tools/gpu-docker/pack.sh (.gpu-docker/, carried);
#   2. `harness images import-host`: a base image made from the machine's own torch environment;
#   3. `harness images build cuda --offline --torch base`: the cuda image on that base, the harness's
#      requirements from .whl/ (carried wheels for the machine's Python);
#   4. the default matrix's cuda ws1 cell with --executor local and --executor docker (GPU access: devices,
#      chosen by `auto` on an engine without the nvidia runtime), counts side by side;
#   5. the bench at ws1 on the host and in the cell's container (benchmarks/harness/bench_in_container.py).
# Everything lands in one tarball under $OUT. Each step is timed; a failing step does not stop the rest.
set -uo pipefail
out=${OUT:-/tmp/cuda-docker-out}
work=/tmp/cuda-docker
rm -rf "$work" && mkdir -p "$work" "$out"
# NVLink multicast must stay off on these shared hosts, in every process the run starts.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 2
export PYTHONPATH=/tmp/site:$PWD
harness() { python3 -m harness.commands.cli "$@"; }
step() {  # step NAME COMMAND...: run, time, log to $work/NAME.log, print its tail
    local name=$1 started=$SECONDS status
    shift
    "$@" >"$work/$name.log" 2>&1
    status=$?
    echo "== $name: exit $status, $((SECONDS - started)) s" | tee -a "$work/steps.txt"
    tail -n "${TAIL:-15}" "$work/$name.log"
}
base=comm-harness/host-torch:gpu
nvidia-smi >"$work/nvidia-smi.txt" 2>&1
ls -la /dev/nvidia* /dev/nvidia-caps 2>&1 >"$work/dev-nodes.txt"
step engine bash .gpu-docker/start.sh
step import harness images import-host "$base"
step build harness images build cuda --offline --torch base --base-image "$base" --wheelhouse .whl
step plan harness plan matrix.yaml --cell 'cuda*ws1' --executor docker
TAIL=6 step cell-local harness run matrix.yaml --cell 'cuda*ws1' --executor local --out "$work/local"
TAIL=6 step cell-docker harness run matrix.yaml --cell 'cuda*ws1' --executor docker --out "$work/docker"
python3 - "$work" <<'PY' | tee "$work/counts.txt"
import json, sys
for executor in ("local", "docker"):
    try:
        cell = json.load(open(f"{sys.argv[1]}/{executor}/summary.json"))["cells"][0]
        print(executor, cell["status"], cell["counts"], f"{cell['duration_s']:.1f} s")
    except Exception as error:
        print(executor, "no summary:", error)
PY
cp "$work/docker/cuda-nccl-ws1/fingerprint.json" "$work/fingerprint-container.json" 2>/dev/null
TAIL=40 step bench timeout 420 python3 benchmarks/harness/bench_in_container.py --world-size 1 --out "$work/bench"
tar -C "$work" -czf "$out/cuda-docker.tgz" --exclude='*/work' .
cp "$work/steps.txt" "$work/counts.txt" "$out/" 2>/dev/null
