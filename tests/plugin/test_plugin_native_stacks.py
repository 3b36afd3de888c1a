"""At the timeout, the report has each hung rank's native (C/C++) stack when py-spy is installed."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from plugin_runs import Run, run_pytest_in

from harness.pytest_plugin.desync.native_stacks import dump_native_stacks
from harness.pytest_plugin.outcomes import NATIVE_STACKS_NEED_PY_SPY

pytestmark = pytest.mark.e2e

HANGS = """
import time
import torch.distributed as dist


def test_hang(dist_env):
    if dist_env.rank == 0:
        time.sleep(600)
    dist.barrier()
"""

needs_py_spy = pytest.mark.skipif(
    shutil.which("py-spy") is None, reason="py-spy is not installed (pip install py-spy, or the dev extra)"
)


def _hang(directory) -> str:
    (directory / "test_hangs.py").write_text(HANGS)
    run: Run = run_pytest_in(directory, "--dist-world-size=2", "--dist-timeout=2", "--dist-reuse=off")
    assert run.outcomes == {"test_hang": "failed"}, run.output
    return run.messages["test_hang"]


@needs_py_spy
def test_a_hung_rank_gets_its_native_stack(tmp_path):
    message = _hang(tmp_path)
    assert NATIVE_STACKS_NEED_PY_SPY not in message
    sections = message.split("---- rank ")
    native = {int(s[0]): s for s in sections if "its native stack (py-spy dump --native)" in s}
    assert sorted(native) == [0, 1], message
    if "py-spy dump --native failed" in native[1]:
        pytest.skip(f"py-spy is installed but cannot attach to a rank here: {native[1].splitlines()[1]}")
    # Rank 0 sleeps in the body; rank 1 waits in gloo's C++ for it; both cut below the test's frames.
    assert "test_hang (test_hangs.py:" in native[0], native[0]
    assert "libc.so" in native[1] and "test_hang (test_hangs.py:" in native[1], native[1]
    assert "(pytest's frames below it omitted)" in native[1] and "pytest_runtestloop" not in message


def test_without_py_spy_one_line_says_how_to_get_native_stacks(tmp_path, monkeypatch):
    path = os.environ.get("PATH", "").split(os.pathsep)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in path if not shutil.which("py-spy", path=d)))
    message = _hang(tmp_path)
    assert message.count(NATIVE_STACKS_NEED_PY_SPY) == 1, message
    assert "native stack (py-spy" not in message
    assert message.count("; its stack ----") == 2, "the Python stacks are there all the same"


@needs_py_spy
def test_a_failed_dump_gives_py_spy_s_error_not_an_exception():
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process
    stacks = dump_native_stacks({3: gone.pid})
    assert stacks is not None and list(stacks) == [3]
    assert stacks[3].startswith("(py-spy dump --native failed, exit code 1: Error:"), stacks[3]
