"""What the local executor ends and marks, on real processes in seconds (the kill -9 runs of whole harnesses
are e2e, in test_containment.py): a cell's processes that left its process group die with it, and every
process of a cell carries the run id the guardian finds leftovers by."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from harness.common.contract import RUN_ID_ENV
from harness.config.model import Cell
from harness.running.executors.local import cell_environment, kill_process_tree
from harness.running.guardian import processes_of_run

# Starts a grandchild in a session of its own (as a daemonising test helper would), prints its pid, waits.
ESCAPES_THE_GROUP = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(300)
"""


def gone(pid: int, within_s: float = 0.0) -> bool:
    """Whether `pid` has exited (a zombie counts: init reaps it), waiting up to `within_s` for it."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def test_a_cells_process_that_left_its_group_is_killed_with_the_cell():
    cell = subprocess.Popen(
        [sys.executable, "-c", ESCAPES_THE_GROUP], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    escaped = int(cell.stdout.readline())
    try:
        assert kill_process_tree(cell) == 1
        assert gone(escaped, within_s=5) and cell.returncode is not None
    finally:
        if not gone(escaped):
            psutil.Process(escaped).kill()
        cell.stdout.close()


def test_every_process_of_a_local_cell_carries_the_run_id():
    cell = Cell(id="cpu-gloo-ws1", device="cpu", backend="gloo", world_size=1, tests=("t",), env={})
    env = cell_environment(cell, [], base={RUN_ID_ENV: "a stale one"}, run_id="run-0123")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env)
    try:
        assert [found.pid for found in processes_of_run("run-0123")] == [process.pid]
    finally:
        process.kill()
        process.wait()
