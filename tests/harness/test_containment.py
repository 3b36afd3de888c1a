"""Nothing of a run outlives its harness, and Ctrl-C never loses the tests that finished.

Real processes throughout: `harness run` killed with SIGKILL, a dead run's leftovers found by the next run,
and a cell interrupted ten times in a row with its finished tests counted every time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_runs import HANGING_TEST, harness_env, run_harness

from harness.common.contract import RUN_ID_ENV
from harness.common.progress_events import ProgressEvent, Reported
from harness.config.model import Cell
from harness.running.executors.local import LocalExecutor
from harness.running.guardian import RUN_RECORD, processes_of_run

pytestmark = pytest.mark.e2e

MATRIX = """
version: 1
defaults: {tests: [tests/test_hangs.py], timeout: 300, test_timeout: 120}
devices:
  cpu: {world_sizes: [2], required: true}
  xpu: {world_sizes: [1]}
"""

# Three tests finish, the fourth waits to be interrupted (no ranks: the interrupt path alone is timed).
FINISH_THREE_THEN_WAIT = """
import time


def test_one():
    pass


def test_two():
    pass


def test_three():
    pass


def test_waits():
    time.sleep(600)
"""


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def hanging_project(project) -> Path:
    path = project(MATRIX)
    (path.parent / "tests" / "test_hangs.py").write_text(HANGING_TEST)
    return path.parent


def test_kill_9_of_the_harness_leaves_no_process_within_10_s(hanging_project: Path) -> None:
    pid_file = hanging_project / "pids.txt"
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness.commands.cli", "run", "--executor", "local", "--out", "out"],
        cwd=hanging_project,
        env=harness_env(PID_FILE=str(pid_file)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(pid_file.read_text().split()) == 2 if pid_file.exists() else False, 180, "ranks")
        run_id = json.loads((hanging_project / "out" / RUN_RECORD).read_text())["run_id"]
        assert len(processes_of_run(run_id)) >= 4  # the cell runner, pytest, two ranks
    finally:
        harness.kill()
        harness.wait()
    killed_at = time.monotonic()

    wait_for(lambda: not processes_of_run(run_id), 10, "the run's processes to end")

    assert time.monotonic() - killed_at < 10
    ranks = [int(pid) for pid in pid_file.read_text().split()]
    assert not any(_alive(pid) for pid in ranks)


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a parent (PID 1 here) to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_later_run_ends_what_a_dead_run_left_in_its_out(hanging_project: Path) -> None:
    root = hanging_project
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "out").mkdir()
    (root / "out" / RUN_RECORD).write_text(
        json.dumps({"pid": dead.pid, "host": os.uname().nodename, "run_id": "deadrun00001"})
    )
    leftover = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, RUN_ID_ENV: "deadrun00001"}, start_new_session=True
    )
    try:
        done = run_harness("run", "--cell", "xpu-*", "--out", "out", cwd=root)
        assert leftover.wait(timeout=10) == -signal.SIGKILL
    finally:
        if leftover.poll() is None:
            leftover.kill()
    assert "ended what run deadrun00001 left behind: 1 process(es)" in done.stdout
    assert not (root / "out" / RUN_RECORD).exists()


def test_a_live_run_into_the_same_out_is_refused(hanging_project: Path) -> None:
    root = hanging_project
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "harness", "run"])
    try:
        (root / "out").mkdir()
        (root / "out" / RUN_RECORD).write_text(
            json.dumps({"pid": stand_in.pid, "host": os.uname().nodename, "run_id": "liverun00001"})
        )
        done = run_harness("run", "--cell", "xpu-*", "--out", "out", cwd=root)
    finally:
        stand_in.kill()
        stand_in.wait()
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"another harness run (pid {stand_in.pid}) is writing its results there" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_keeps_the_finished_tests_every_time(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_three.py").write_text(FINISH_THREE_THEN_WAIT)
    cell = Cell(id="cpu-gloo-ws1", device="cpu", backend="gloo", world_size=1, tests=("tests/test_three.py",))
    executor = LocalExecutor(tmp_path)
    request.addfinalizer(executor.close)  # the run's cgroup goes with the executor
    for attempt in range(10):
        passed = threading.Semaphore(0)

        def on_progress(cell_id: str, event: ProgressEvent, passed=passed) -> None:
            if isinstance(event, Reported) and (event.when, event.outcome) == ("call", "passed"):
                passed.release()

        results: list[Any] = []

        def run(results=results, on_progress=on_progress) -> None:
            results.append(executor.run(cell, tmp_path / "out" / cell.id, [], on_progress))

        runner = threading.Thread(target=run)
        runner.start()
        for _ in range(3):
            assert passed.acquire(timeout=120), f"attempt {attempt}: three tests did not pass"
        executor.interrupt()
        runner.join(60)

        result = results[0]
        assert result.status == "error", attempt
        assert result.reason == (
            "interrupted while running tests/test_three.py::test_waits (3 of 4 tests finished, 1 not run)"
        ), attempt
        assert (result.counts.passed, result.counts.failed, result.counts.errors) == (3, 0, 0), (
            f"attempt {attempt}: {result.counts}"
        )
