"""Native (C/C++) stacks of ranks that hang, from `py-spy dump --native`: where NCCL or gloo is waiting.

`allow_native_stack_dumps` runs in a rank; `dump_native_stacks` in the pytest process.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import tempfile
import time
from typing import IO

# Per dump, all ranks at once. Reading a torch process's native symbols takes py-spy a second or two.
PY_SPY_TIMEOUT_S = 10.0

_PR_SET_PTRACER = 0x59616D61
_PR_SET_PTRACER_ANY = ctypes.c_ulong(-1)


def allow_native_stack_dumps() -> None:
    """In a rank: let py-spy attach although it is not our ancestor (Yama ptrace_scope 1, the Ubuntu default).

    Without Yama (or with a stricter scope) the call fails and changes nothing; py-spy then reports why.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PTRACER, _PR_SET_PTRACER_ANY, 0, 0, 0)


def dump_native_stacks(pids: dict[int, int]) -> dict[int, str] | None:
    """`py-spy dump --native` of each rank (rank -> pid), in parallel; None when py-spy is not installed.

    A dump that fails (no ptrace permission, say) or takes too long gives py-spy's error instead of a stack.
    """
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return None
    stacks: dict[int, str] = {}
    running: dict[int, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
    for rank, pid in pids.items():
        # Files, not pipes: a long dump must not block on a pipe nobody reads while we wait on another rank.
        output = tempfile.NamedTemporaryFile(prefix=f"comm-harness-py-spy-rank{rank}-")
        try:
            process = subprocess.Popen(
                [py_spy, "dump", "--native", "--pid", str(pid)],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            output.close()
            stacks[rank] = f"(py-spy could not be started: {exc})"
            continue
        running[rank] = (process, output)
    give_up = time.monotonic() + PY_SPY_TIMEOUT_S
    for rank, (process, output) in running.items():
        with output:
            try:
                process.wait(timeout=max(0.0, give_up - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                stacks[rank] = f"(py-spy dump --native did not finish within {PY_SPY_TIMEOUT_S:g} s)"
                continue
            output.seek(0)
            text = output.read().decode(errors="replace").strip()
        if process.returncode != 0:
            stacks[rank] = f"(py-spy dump --native failed, exit code {process.returncode}: {_error_of(text)})"
        else:
            stacks[rank] = text
    return stacks


def _error_of(output: str) -> str:
    """py-spy's error line and its first cause: "Error: Failed to ... (caused by: Permission denied ...)"."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return "no output"
    error = next((line for line in lines if line.startswith("Error:")), lines[-1])
    causes = lines[lines.index("Caused by:") + 1 :] if "Caused by:" in lines else []
    return f"{error} (caused by: {causes[0].removeprefix('0: ')})" if causes else error
