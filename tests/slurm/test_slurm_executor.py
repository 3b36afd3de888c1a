"""Cells as jobs of a real Slurm cluster (.ci/slurm-cluster.sh: slurmctld and two slurmds on this host)."""

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

import pytest
from conftest import CELLS, REPO_ROOT, jobs_named

from harness.common.progress_events import ProgressEvent, Started
from harness.config.model import Cell
from harness.running.executors.slurm import SlurmExecutor
from harness.running.executors.slurm_jobs import job_name
from harness.running.guardian import RUN_RECORD

pytestmark = pytest.mark.slurm


def make_cell(name: str, test_file: str, world_size: int = 2, **overrides: Any) -> Cell:
    fields: dict[str, Any] = {
        "id": f"slurm-test-{name}",
        "device": "cpu",
        "backend": "gloo",
        "world_size": world_size,
        "tests": (f"{CELLS}/{test_file}",),
        "timeout_s": 300.0,
        "test_timeout_s": 120.0,
        "env": {"OMP_NUM_THREADS": "1"},
    }
    fields.update(overrides)
    return Cell(**fields)


class WhenTestsStart:
    """An on_progress callback that runs `action` once, in a thread, when the first test starts."""

    def __init__(self, action: Any) -> None:
        self._action = action
        self.thread: threading.Thread | None = None

    def __call__(self, cell_id: str, event: ProgressEvent) -> None:
        if isinstance(event, Started) and self.thread is None:
            self.thread = threading.Thread(target=self._action)
            self.thread.start()


def the_job(executor: SlurmExecutor) -> str:
    (line,) = jobs_named(job_name(executor.run_id))
    return line.split()[0]


def test_a_two_node_cell_passes_as_one_allocation_of_two_nodes(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    events: list[ProgressEvent] = []
    cell = make_cell("nodes", "cell_collectives.py", world_size=4, nodes=2)

    result = executor.run(cell, tmp_path / cell.id, [], lambda _, event: events.append(event))

    assert result.status == "passed", result.reason
    assert (result.counts.passed, result.counts.failed) == (2, 0)
    assert any(isinstance(event, Started) for event in events)  # progress came while the job ran
    log = (tmp_path / cell.id / "log.txt").read_text()
    assert "COMPLETED on n1,n2" in log
    assert "world size 4 over 2 nodes (this is node 0)" in log
    node1 = tmp_path / cell.id / "node1"
    assert (node1 / "junit.xml").is_file()
    assert "world size 4 over 2 nodes (this is node 1)" in (node1 / "log.txt").read_text()
    assert not (tmp_path / cell.id / "work").exists()


def test_a_cell_from_a_shared_results_directory_comes_back_into_out(
    tmp_path: Path, slurm_cluster: None
) -> None:
    from harness.config.model import SlurmSpec

    shared = tmp_path / "shared"
    shared.mkdir()
    executor = SlurmExecutor(REPO_ROOT, run_id="tshared", options=SlurmSpec(results_dir=str(shared)))
    cell = make_cell("shared", "cell_collectives.py", world_size=2, nodes=2)

    result = executor.run(cell, tmp_path / "out" / cell.id, [], lambda *_: None)

    assert result.status == "passed", result.reason
    assert (tmp_path / "out" / cell.id / "junit.xml").is_file()
    assert (tmp_path / "out" / cell.id / "node1" / "junit.xml").is_file()
    assert list((shared / "tshared").iterdir()) == []


def test_a_cancelled_job_says_cancelled(executor: SlurmExecutor, tmp_path: Path) -> None:
    cancel = WhenTestsStart(lambda: subprocess.run(["scancel", the_job(executor)], check=True))
    cell = make_cell("cancelled", "cell_sleeps.py", world_size=1)

    result = executor.run(cell, tmp_path / cell.id, [], cancel)

    assert result.status == "error"
    assert "CANCELLED" in result.reason
    assert "cell_sleeps.py::test_sleeps_far_past_any_timeout" in result.reason


def test_ctrl_c_cancels_the_job_and_says_interrupted(executor: SlurmExecutor, tmp_path: Path) -> None:
    interrupt = WhenTestsStart(executor.interrupt)
    cell = make_cell("interrupted", "cell_sleeps.py", world_size=1)

    result = executor.run(cell, tmp_path / cell.id, [], interrupt)

    assert result.status == "error"
    assert result.reason.startswith("interrupted")


@pytest.mark.e2e
def test_a_node_killed_mid_test_fails_the_cell_naming_the_node(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    def kill_node1() -> None:
        time.sleep(2)
        pids = subprocess.run(
            ["pgrep", "-f", f"harness.running.executors.slurm_node {tmp_path / cell.id}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"SLURM_NODEID=1" in environ:
                os.kill(int(pid), signal.SIGKILL)

    cell = make_cell("nodekilled", "cell_node_sleeps.py", world_size=2, nodes=2)

    result = executor.run(cell, tmp_path / cell.id, [], WhenTestsStart(kill_node1))

    assert result.status == "error"
    assert "node 1 of 2 (n2)" in result.reason, result.reason
    assert "FAILED" in result.reason


@pytest.mark.e2e
def test_a_cell_past_its_time_limit_is_a_slurm_timeout_naming_the_test(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    # One minute is Slurm's least time limit; slurmctld looks for jobs past theirs every 30 s or so.
    cell = make_cell("timeout", "cell_sleeps.py", world_size=1, timeout_s=60.0, test_timeout_s=600.0)

    result = executor.run(cell, tmp_path / cell.id, [], lambda *_: None)

    assert result.status == "error"
    assert "TIMEOUT" in result.reason and "time limit of 1 min" in result.reason
    assert f"while running {CELLS}/cell_sleeps.py::test_sleeps_far_past_any_timeout" in result.reason


HANGING = """
import time


def test_hangs(dist_env):
    time.sleep(600)
"""


def test_kill_9_of_the_harness_cancels_its_jobs_within_10_s(tmp_path: Path, slurm_cluster: None) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGING)
    (tmp_path / "matrix.yaml").write_text(
        "version: 1\n"
        "defaults: {tests: [test_hangs.py]}\n"
        "devices:\n"
        "  cpu: {world_sizes: [2], nodes: [2], executor: slurm, env: {OMP_NUM_THREADS: '1'}}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness.commands.cli", "run", "matrix.yaml", "--out", "out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        name = job_name(_run_id(tmp_path / "out"))
        deadline = time.monotonic() + 120
        while not any(line.endswith("RUNNING") for line in jobs_named(name)):
            assert time.monotonic() < deadline, "the job never ran"
            time.sleep(0.5)
        harness.kill()
        harness.wait()
        killed = time.monotonic()
        while jobs_named(name):
            assert time.monotonic() - killed < 10, f"still in squeue 10 s after kill -9: {jobs_named(name)}"
            time.sleep(0.2)
    finally:
        harness.kill()
        harness.wait()


def _run_id(out: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return json.loads((out / RUN_RECORD).read_text())["run_id"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    raise AssertionError("the harness wrote no run record")
