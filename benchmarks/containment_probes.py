"""The containment probes of issue #13, timed: what is left after `kill -9` of `harness run`, and how fast.

For each executor (local, and docker when an engine answers) it starts `harness run` on a cell whose
test hangs, waits until the cell's test is running, kills the harness with SIGKILL, and times how long
until nothing of the run is left: no process carrying its HARNESS_RUN_ID, no container with its label.

    python benchmarks/containment_probes.py [--repeat 3] [--executor local --executor docker]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness.run_guardian import RUN_RECORD, processes_of_run, remove_containers_of_run  # noqa: E402

HANGING_TEST = "import time\n\n\ndef test_hangs():\n    time.sleep(3600)\n"
GIVE_UP_S = 60.0


def containers_of_run(run_id: str) -> int:
    try:
        import docker

        client = docker.from_env(timeout=10)
        return len(
            client.containers.list(
                all=True, filters={"label": f"comm-harness.run={run_id}"}, ignore_removed=True
            )
        )
    except Exception:
        return 0


def probe(executor: str, root: Path) -> dict[str, float | int | str]:
    """One kill -9 of `harness run`: seconds until the run's processes and containers were gone."""
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "tests" / "test_hangs.py").write_text(HANGING_TEST)
    (root / "matrix.yaml").write_text(
        "version: 1\ndefaults: {tests: [tests/test_hangs.py], timeout: 3600}\n"
        f"devices:\n  cpu: {{world_sizes: [1], image: {{dockerfile: {REPO_ROOT}/docker/cpu.Dockerfile}}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--executor", executor, "--offline", "--out", "out"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    progress = root / "out" / "cpu-gloo-ws1" / "work" / "progress.jsonl"
    deadline = time.monotonic() + 300
    while not (progress.exists() and b'"start"' in progress.read_bytes()):
        if time.monotonic() > deadline or harness.poll() is not None:
            harness.kill()
            return {"executor": executor, "error": "the cell's test never started"}
        time.sleep(0.1)
    run_id = json.loads((root / "out" / RUN_RECORD).read_text())["run_id"]
    before = len(processes_of_run(run_id)), containers_of_run(run_id)
    harness.kill()
    harness.wait()
    killed = time.monotonic()
    while processes_of_run(run_id) or containers_of_run(run_id):
        if time.monotonic() - killed > GIVE_UP_S:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - killed
    left = len(processes_of_run(run_id)), containers_of_run(run_id)
    remove_containers_of_run(run_id)
    return {
        "executor": executor,
        "processes_before": before[0],
        "containers_before": before[1],
        "seconds_to_nothing_left": round(seconds, 2),
        "processes_left": left[0],
        "containers_left": left[1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--executor", action="append", choices=("local", "docker"))
    args = parser.parse_args()
    for executor in args.executor or ["local", "docker"]:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as directory:
                # The project directory: cells run as nobody when the harness is root, and must read it.
                os.chmod(directory, 0o755)
                print(json.dumps(probe(executor, Path(directory))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
