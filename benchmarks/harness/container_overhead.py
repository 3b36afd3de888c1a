"""What a container costs a cell: the same CPU cell through the local and the Docker executor, side by side.

Each repetition runs the cell once per executor (alternating, so load drifts hit both alike) and records
  start to first test: from executor.run() being called to the first test's "start" event in progress.jsonl
                       (interpreter, torch import, pytest collection; plus, for Docker, container create,
                       start and mounts),
  whole cell:          executor.run() from call to return, results collected and the container removed.
and, for scale, the bare container lifecycle: create, start, exit and remove a container running `true`
with the same mounts and options. The image is built (or found) before timing starts; building is not
part of the figures.

    python benchmarks/harness/container_overhead.py                      # world size 2, 3 repetitions
    python benchmarks/harness/container_overhead.py --world-size 4 --repeat 5 --out results/overhead.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from harness.common.progress_events import Started, parse_event_line  # noqa: E402
from harness.config.model import Cell, ImageSpec  # noqa: E402
from harness.running.containers import connect_engine  # noqa: E402
from harness.running.executors.docker import DockerExecutor, project_mounts  # noqa: E402
from harness.running.executors.local import LocalExecutor  # noqa: E402
from harness.running.images import build_image, recipe_for  # noqa: E402

CELL_TESTS = ("tests/docker/cells/cell_collectives.py",)


def benchmark_cell(world_size: int) -> Cell:
    """A small real cell: two gloo collectives over `world_size` forked ranks."""
    return Cell(
        id=f"overhead-cpu-ws{world_size}",
        device="cpu",
        backend="gloo",
        world_size=world_size,
        tests=CELL_TESTS,
        image=ImageSpec(dockerfile="docker/cpu.Dockerfile", shm_size="1g"),
        env={"OMP_NUM_THREADS": "1"},
        timeout_s=600.0,
    )


def first_test_start(progress: Path) -> float | None:
    """The wall-clock time of the first test's start event, or None when no test started."""
    for line in progress.read_text().splitlines():
        event = parse_event_line(line)
        if isinstance(event, Started) and event.time is not None:
            return event.time
    return None


def measure(executor: Any, cell: Cell, results_dir: Path) -> dict[str, Any]:
    """Run the cell once and time it."""
    called = time.time()
    started = time.monotonic()
    result = executor.run(cell, results_dir, [], lambda cell_id, event: None)
    whole = time.monotonic() - started
    first = first_test_start(results_dir / "progress.jsonl")
    if result.status != "passed":
        raise SystemExit(f"{executor.name}: the cell did not pass ({result.status}): {result.reason}")
    return {
        "executor": executor.name,
        "start_to_first_test_s": round(first - called, 3) if first else None,
        "whole_cell_s": round(whole, 3),
    }


def container_lifecycle(client: Any, image: str) -> float:
    """Seconds to create, start, wait for and remove a container of `image` that runs `true`."""
    started = time.monotonic()
    container = client.containers.create(
        image,
        ["true"],
        network_mode="none",
        init=True,
        shm_size="1g",
        volumes=project_mounts(REPO_ROOT, REPO_ROOT),
    )
    try:
        container.start()
        container.wait()
    finally:
        container.remove(force=True)
    return round(time.monotonic() - started, 3)


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median and spread of each figure, per executor."""
    summary: dict[str, dict[str, float]] = {}
    for name in ("local", "docker"):
        mine = [run for run in runs if run["executor"] == name]
        summary[name] = {}
        for figure in ("start_to_first_test_s", "whole_cell_s"):
            values = [run[figure] for run in mine]
            summary[name][f"{figure}_median"] = round(statistics.median(values), 3)
            summary[name][f"{figure}_min"] = round(min(values), 3)
            summary[name][f"{figure}_max"] = round(max(values), 3)
    return summary


def print_table(summary: dict[str, dict[str, float]], repeat: int, world_size: int) -> None:
    print(f"\ncpu cell, world size {world_size}, {repeat} runs each (median [min-max], seconds)")
    print(f"{'executor':<10}{'start to first test':>26}{'whole cell':>26}")
    figures = ("start_to_first_test_s", "whole_cell_s")
    for name in ("local", "docker"):
        values = summary[name]
        cells = [
            f"{values[f'{figure}_median']:.2f} [{values[f'{figure}_min']:.2f}-{values[f'{figure}_max']:.2f}]"
            for figure in figures
        ]
        print(f"{name:<10}{cells[0]:>26}{cells[1]:>26}")
    docker, local = summary["docker"], summary["local"]
    extra = [docker[f"{figure}_median"] - local[f"{figure}_median"] for figure in figures]
    print(f"{'docker - local':<10}{extra[0]:>+26.2f}{extra[1]:>+26.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "container_overhead.json")
    args = parser.parse_args()

    client = connect_engine()
    recipe = recipe_for("cpu", repo_root=REPO_ROOT)
    build_image(client, recipe, offline=True, log=lambda line: None)
    cell = benchmark_cell(args.world_size)
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="container-overhead-") as scratch,
        DockerExecutor(REPO_ROOT, client=client) as docker_executor,
    ):
        executors = [LocalExecutor(REPO_ROOT), docker_executor]
        for repetition in range(args.repeat):
            for executor in executors:
                run = measure(executor, cell, Path(scratch) / f"{executor.name}-{repetition}")
                print(json.dumps(run), flush=True)
                runs.append(run)
    lifecycle = [container_lifecycle(client, recipe.tag) for _ in range(args.repeat)]
    summary = summarize(runs)
    summary["container_lifecycle_s"] = {
        "median": round(statistics.median(lifecycle), 3),
        "min": min(lifecycle),
        "max": max(lifecycle),
    }
    document = {
        "cell": cell.to_json(),
        "image": recipe.tag,
        "repeat": args.repeat,
        "runs": runs,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print_table(summary, args.repeat, args.world_size)
    bare = summary["container_lifecycle_s"]
    spread = f"[{bare['min']:.2f}-{bare['max']:.2f}]"
    print(f"bare container create+start+exit+remove: {bare['median']:.2f} s {spread}")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
