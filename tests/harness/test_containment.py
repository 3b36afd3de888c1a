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
        # Its first line; on a loaded machine pytest can be killed before it writes junit.xml, and a second
        # line then says the counts come from the progress events.
        assert result.reason.splitlines()[0] == (
            "interrupted while running tests/test_three.py::test_waits (3 of 4 tests finished, 1 not run)"
        ), attempt
        assert (result.counts.passed, result.counts.failed, result.counts.errors) == (3, 0, 0), (
            f"attempt {attempt}: {result.counts}"
        )


# Rank 0 finishes the body, rank 1 sleeps in it; each leaves a mark so the test knows when to press Ctrl-C.
RANK_1_HANGS = """
import os
import time
from pathlib import Path


def test_quick(dist_env):
    pass


def test_hang(dist_env):
    if dist_env.rank == 1:
        Path(os.environ["MARKS"], "rank1-sleeping").touch()
        time.sleep(600)
    Path(os.environ["MARKS"], "rank0-done").touch()
"""


@pytest.mark.parametrize("mode", ["fork", "reuse"])
def test_ctrl_c_names_the_test_and_the_ranks_still_in_it(project, tmp_path: Path, mode: str) -> None:
    project(MATRIX.replace("tests/test_hangs.py", "tests/test_rank_1_hangs.py"))
    (tmp_path / "tests" / "test_rank_1_hangs.py").write_text(RANK_1_HANGS)
    marks = tmp_path / "marks"
    marks.mkdir()
    pytest_args = ["--", "--dist-reuse", "on"] if mode == "reuse" else []
    harness = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.commands.cli",
            "run",
            "--executor",
            "local",
            "--out",
            "out",
            "--cell",
            "cpu-*",
            *pytest_args,
        ],
        cwd=tmp_path,
        env=harness_env(MARKS=str(marks)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As a terminal's Ctrl-C: SIGINT to the harness's whole process group, handled as Python does.
        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), os.setpgrp()),
    )
    try:
        wait_for(lambda: {p.name for p in marks.iterdir()} == {"rank0-done", "rank1-sleeping"}, 180, "ranks")
        time.sleep(1)  # rank 0's outcome reaches pytest
        os.killpg(harness.pid, signal.SIGINT)
        output, _ = harness.communicate(timeout=60)
    finally:
        harness.kill()
        harness.wait()

    where = (
        "interrupted in tests/test_rank_1_hangs.py::test_hang: rank 1 of 2 still running, in "
        "tests/test_rank_1_hangs.py:14 test_hang (rank 0 finished the test body) "
        "(1 of 2 tests finished, 1 not run)"
    )
    assert harness.returncode == 130, output
    assert f"ERROR cpu-gloo-ws2: {where}" in output
    (cell,) = json.loads((tmp_path / "out" / "summary.json").read_text())["cells"]
    headline, stack_header, *stack = cell["reason"].splitlines()
    assert headline == where
    assert stack_header == "---- rank 1 of 2 when interrupted; its stack ----"
    assert any('test_rank_1_hangs.py", line 14 in test_hang' in line for line in stack), cell["reason"]
    assert where in (tmp_path / "out" / "summary.md").read_text()
