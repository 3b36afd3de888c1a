"""The containment probes of issues #13 and #29, timed: what a cell leaves on the host, and how fast it goes.

For each executor (local, and docker when an engine answers) it starts `harness run` on a cell whose
test hangs, waits until the cell's test is running, kills the harness with SIGKILL, and times how long
until nothing of the run is left: no process carrying its HARNESS_RUN_ID, no container with its label.

For the local executor the hanging test is tests/harness/data/detached_daemon.py: it first leaves a
double-forked, setsid, renamed daemon with an empty environment (no HARNESS_RUN_ID), whose pid is
watched too. Two more local probes run that test to its normal end ("cell-ends") and with the test
killing its own cell runner ("runner-killed"), and report whether the daemon outlived the run; after
the kill -9 probe, a second run into the same --out says whether it works and ends what is left.

    python benchmarks/harness/containment_probes.py [--repeat 3] [--executor local --executor docker]
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

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from harness.common.errors import DockerUnavailableError  # noqa: E402
from harness.host.processes import pid_alive  # noqa: E402
from harness.running.containers import (  # noqa: E402
    containers_of_run,
    engine_client,
    remove_containers_of_run,
)
from harness.running.guardian import RUN_RECORD, processes_of_run  # noqa: E402

HANGING_TEST = "import time\n\n\ndef test_hangs():\n    time.sleep(3600)\n"
DAEMON_TEST = REPO_ROOT / "tests" / "harness" / "data" / "detached_daemon.py"
GIVE_UP_S = 60.0


def containers_left(run_id: str) -> int:
    try:
        with engine_client(timeout_s=10) as client:
            return len(containers_of_run(client, run_id))
    except DockerUnavailableError:  # no engine: no container of the run
        return 0


def daemon_pid(root: Path) -> int | None:
    try:
        return int((root / "daemon.pid").read_text())
    except (OSError, ValueError):
        return None


def kill_daemon(root: Path) -> None:
    """The probe leaves nothing behind even where the harness did."""
    pid = daemon_pid(root)
    if pid_alive(pid):
        psutil.Process(pid).kill()


def write_project(executor: str, root: Path) -> None:
    (root / "tests").mkdir(parents=True, exist_ok=True)
    test = DAEMON_TEST.read_text() if executor == "local" else HANGING_TEST
    (root / "tests" / "test_hangs.py").write_text(test)
    (root / "matrix.yaml").write_text(
        "version: 1\ndefaults: {tests: [tests/test_hangs.py], timeout: 3600}\n"
        f"devices:\n  cpu: {{world_sizes: [1], image: {{dockerfile: {REPO_ROOT}/docker/cpu.Dockerfile}}}}\n"
    )


def start_harness(executor: str, root: Path, then: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DAEMON_PID_FILE": str(root / "daemon.pid"),
        "DAEMON_THEN": then,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "harness.commands.cli", "run"]
        + ["--executor", executor, "--offline", "--out", "out"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def probe_kill_9(executor: str, root: Path) -> dict[str, float | int | str | bool]:
    """One kill -9 of `harness run`: seconds until the run's processes, containers and daemon were gone."""
    write_project(executor, root)
    harness = start_harness(executor, root, "hang")
    progress = root / "out" / "cpu-gloo-ws1" / "work" / "progress.jsonl"
    deadline = time.monotonic() + 300
    while not (progress.exists() and b'"start"' in progress.read_bytes()):
        if time.monotonic() > deadline or harness.poll() is not None:
            harness.kill()
            return {"executor": executor, "probe": "kill-9", "error": "the cell's test never started"}
        time.sleep(0.1)
    daemon = None
    while executor == "local" and not pid_alive(daemon := daemon_pid(root)):
        if time.monotonic() > deadline:
            harness.kill()
            return {"executor": executor, "probe": "kill-9", "error": "the daemon never started"}
        time.sleep(0.05)
    run_id = json.loads((root / "out" / RUN_RECORD).read_text())["run_id"]
    before = len(processes_of_run(run_id)), containers_left(run_id)
    harness.kill()
    harness.wait()
    killed = time.monotonic()
    while processes_of_run(run_id) or containers_left(run_id) or pid_alive(daemon):
        if time.monotonic() - killed > GIVE_UP_S:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - killed
    left = len(processes_of_run(run_id)), containers_left(run_id), pid_alive(daemon)
    result: dict[str, float | int | str | bool] = {
        "executor": executor,
        "probe": "kill-9",
        "processes_before": before[0],
        "containers_before": before[1],
        "seconds_to_nothing_left": round(seconds, 2),
        "processes_left": left[0],
        "containers_left": left[1],
    }
    if executor == "local":
        result["daemon_left"] = left[2]
        (root / "daemon.pid").unlink(missing_ok=True)
        again = start_harness(executor, root, "return")
        output = again.communicate(timeout=600)[0].decode(errors="replace")
        result["next_run_exit_code"] = again.returncode
        result["next_run_daemon_left"] = pid_alive(daemon_pid(root))
        result["daemon_still_left_after_next_run"] = pid_alive(daemon)
        result["next_run_notes"] = " | ".join(line for line in output.splitlines() if "note:" in line)
        kill_daemon(root)
        if pid_alive(daemon):
            psutil.Process(daemon).kill()
    remove_containers_of_run(run_id)
    return result


def probe_daemon_after_run(root: Path, then: str) -> dict[str, float | int | str | bool]:
    """Run the daemon test to its end (`then`: return, kill-runner); whether the daemon outlived the run."""
    write_project("local", root)
    harness = start_harness("local", root, then)
    harness.communicate(timeout=600)
    daemon = daemon_pid(root)
    result: dict[str, float | int | str | bool] = {
        "executor": "local",
        "probe": {"return": "cell-ends", "kill-runner": "runner-killed"}[then],
        "exit_code": harness.returncode,
        "daemon_started": daemon is not None,
        "daemon_left": pid_alive(daemon),
    }
    kill_daemon(root)
    return result


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
                print(json.dumps(probe_kill_9(executor, Path(directory))), flush=True)
        if executor == "local":
            for then in ("return", "kill-runner"):
                with tempfile.TemporaryDirectory() as directory:
                    print(json.dumps(probe_daemon_after_run(Path(directory), then)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
