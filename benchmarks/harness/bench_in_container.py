"""The bench on the host and in a cuda cell's container, side by side, in one run.

Runs `harness bench` on this host's GPUs, then the same bench in a container of the cuda image, given its
GPUs and confined exactly as a cuda cell's container is (the matrix's image.gpus: the NVIDIA runtime, or the
device nodes and driver libraries passed by the harness; no capability, no network), and prints each
collective's busbw at each size for both with their ratio. Both JSON documents are written to --out.

    python benchmarks/harness/bench_in_container.py --world-size 1 --out results/bench-in-container
    python benchmarks/harness/bench_in_container.py --world-size 1 --sizes 1M,64M,1G --ops all_reduce
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from harness.common.contract import IMAGE_ENV  # noqa: E402
from harness.config.matrix import load_matrix  # noqa: E402
from harness.running.containers import connect_engine  # noqa: E402
from harness.running.executors.docker import (  # noqa: E402
    RESULTS_MOUNT,
    DockerExecutor,
    confinement_options,
    container_environment,
    container_user,
    device_options,
    project_mounts,
    with_image_library_path,
)
from harness.running.images import recipe_for  # noqa: E402


def bench_command(python: str, args: argparse.Namespace, json_path: str) -> list[str]:
    command = [python, "-m", "harness.commands.cli", "bench", "--device", "cuda"]
    command += ["--world-size", str(args.world_size)]
    for flag in ("ops", "sizes"):
        if getattr(args, flag):
            command += [f"--{flag}", getattr(args, flag)]
    return command + ["--no-overhead", "--json", json_path]


def run_on_host(args: argparse.Namespace, out: Path) -> float:
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run(bench_command(sys.executable, args, str(out / "bench-host.json")), env=env, check=True)
    return time.monotonic() - started


def run_in_container(args: argparse.Namespace, out: Path) -> tuple[float, str]:
    """The bench in the cuda cell's container (its image, GPU access and confinement); (seconds, access)."""
    matrix = load_matrix(REPO_ROOT / "matrix.yaml")
    cell = next(
        c for c in matrix.cells if c.device == "cuda" and c.world_size == args.world_size and c.nodes == 1
    )
    client = connect_engine(timeout_s=600)
    executor = DockerExecutor(REPO_ROOT, offline=True, client=client)
    image = client.images.get(recipe_for("cuda", cell.image, matrix.root).tag)
    gpu_ids = list(range(args.world_size))
    access = executor.gpu_access(cell, gpu_ids)
    environment = with_image_library_path(
        {**container_environment(cell, gpu_ids), **access.env, IMAGE_ENV: image.tags[0]}, image
    )
    out.mkdir(parents=True, exist_ok=True)
    uid, gid = container_user()
    os.chown(out, uid, gid)  # the cell's user writes the JSON, as a cell writes its results
    started = time.monotonic()
    container = client.containers.create(
        image.id,
        bench_command("python", args, f"{RESULTS_MOUNT}/bench-container.json"),
        working_dir="/repo",
        volumes=project_mounts(REPO_ROOT, out),
        environment=environment,
        labels={"comm-harness": "1"},
        user=f"{uid}:{gid}",
        init=True,
        network_mode="none",
        **confinement_options(cell),
        **device_options(cell, gpu_ids, access),
    )
    try:
        container.start()
        status = container.wait(timeout=args.timeout)["StatusCode"]
        (out / "bench-container.log").write_bytes(container.logs())
        if status != 0:
            raise SystemExit(f"the bench in the container exited {status}; see {out / 'bench-container.log'}")
    finally:
        container.remove(force=True)
        executor.close()
    return time.monotonic() - started, access.description


def timed_rows(path: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """(collective[shares], bytes) -> (time us, algbw GB/s) of the communicator's rows.

    algbw, not busbw: at world size 1 busbw's factor (n-1)/n is 0, and what a container could cost shows in
    the time either way.
    """
    rows: dict[tuple[str, int], tuple[float, float]] = {}
    for row in json.loads(path.read_text())["rows"]:
        if "algbw_gbps" in row and row.get("impl") == "communicator":
            name = f"{row['op']}[{row['shares']}]" if "shares" in row else row["op"]
            rows[(name, row["bytes"])] = (row["time_us"], row["algbw_gbps"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=1)
    parser.add_argument("--ops", default=None)
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--timeout", type=float, default=540)
    parser.add_argument("--out", type=Path, default=Path("results/bench-in-container"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    host_s = run_on_host(args, args.out)
    container_s, access = run_in_container(args, args.out)
    host, container = timed_rows(args.out / "bench-host.json"), timed_rows(args.out / "bench-container.json")
    print(f"host {host_s:.0f} s; container {container_s:.0f} s (GPUs: {access})")
    columns = ("host us", "ctr us", "host GB/s", "ctr GB/s", "ctr/host")
    print(f"{'collective':<28} {'bytes':>11} " + " ".join(f"{name:>9}" for name in columns))
    for key in sorted(host):
        if key in container:
            (host_us, host_bw), (ctr_us, ctr_bw) = host[key], container[key]
            ratio = ctr_us / host_us if host_us else float("nan")
            figures = (host_us, ctr_us, host_bw, ctr_bw)
            print(f"{key[0]:<28} {key[1]:>11} " + " ".join(f"{v:>9.1f}" for v in figures) + f" {ratio:>9.3f}")
    summary: dict[str, Any] = {"host_s": host_s, "container_s": container_s, "gpu_access": access}
    (args.out / "bench-in-container.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
