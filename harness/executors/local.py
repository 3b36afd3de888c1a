"""Runs a cell on this host: `python -m harness.cell_runner` in its own process group, output teed to log.txt.

The process group is the unit of cleanup: on timeout, Ctrl-C or a normal end, whatever is left of the
group (rank workers, forked test children) is killed, so no process outlives its cell.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import psutil

from harness.executors.progress_tail import ProgressTail
from harness.executors.results import (
    JUNIT_XML,
    LOG_TXT,
    PROGRESS_JSONL,
    collect_cell_result,
    write_cell_json,
)
from harness.executors.running import RunningCells
from harness.model import Cell, CellResult, ProgressCallback

# How long a cell may take to wind down after SIGINT (pytest then still writes junit.xml) before SIGKILL.
INTERRUPT_GRACE_S = 5.0
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def gpu_visibility_env(device: str, gpu_ids: list[int]) -> dict[str, str]:
    """The variable that limits a cell to its GPUs: CUDA_VISIBLE_DEVICES or ZE_AFFINITY_MASK."""
    ids = ",".join(str(gpu) for gpu in gpu_ids)
    if device == "cuda":
        return {"CUDA_VISIBLE_DEVICES": ids}
    if device == "xpu":
        return {"ZE_AFFINITY_MASK": ids}
    return {}


def cell_environment(cell: Cell, gpu_ids: list[int], base: dict[str, str] | None = None) -> dict[str, str]:
    """The runner's environment: the host's, the cell's `env`, GPU visibility, and harness importable."""
    env = dict(os.environ if base is None else base)
    env.update(cell.env)
    env.update(gpu_visibility_env(cell.device, gpu_ids))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _RunningCell:
    """One cell's process group, and why it was stopped if it was."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.stop_reason = ""
        self.lock = threading.Lock()

    def stop(self, reason: str) -> None:
        """Ask the group to wind down (SIGINT), then kill it after the grace period."""
        with self.lock:
            if self.stop_reason:
                return
            self.stop_reason = reason
        _signal_group(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        kill_process_tree(self.process)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (psutil.Error, ProcessLookupError):
            continue
    return members


def kill_process_tree(process: subprocess.Popen[bytes]) -> int:
    """SIGKILL the process, its group and descendants that left the group; returns how many others lived."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    others = {p.pid: p for p in [*_group_members(process.pid), *descendants] if p.pid != process.pid}
    _signal_group(process.pid, signal.SIGKILL)
    for other in others.values():
        try:
            other.kill()
        except psutil.Error:
            pass
    if process.poll() is None:
        process.kill()
    process.wait()
    return len(others)


class LocalExecutor:
    """Runs cells as subprocesses of the harness, in the project root."""

    name = "local"

    def __init__(self, project_root: Path) -> None:
        self.project_root = project_root
        self._running = RunningCells()

    def run(
        self, cell: Cell, results_dir: Path, gpu_ids: list[int], on_progress: ProgressCallback
    ) -> CellResult:
        """Run the cell to completion (or timeout) and collect its result."""
        results_dir.mkdir(parents=True, exist_ok=True)
        for stale in (JUNIT_XML, PROGRESS_JSONL):
            (results_dir / stale).unlink(missing_ok=True)
        cell_json = write_cell_json(cell, results_dir)
        command = [sys.executable, "-m", "harness.cell_runner", str(cell_json), str(results_dir.resolve())]
        started = time.monotonic()
        with (
            (results_dir / LOG_TXT).open("wb") as log,
            ProgressTail(results_dir / PROGRESS_JSONL, cell.id, on_progress),
        ):
            process = subprocess.Popen(
                command,
                cwd=self.project_root,
                env=cell_environment(cell, gpu_ids),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            running = _RunningCell(process)
            self._running.add(cell.id, running)
            tee = threading.Thread(target=_copy_stream, args=(process.stdout, log), daemon=True)
            tee.start()
            try:
                process.wait(timeout=cell.timeout_s)
            except subprocess.TimeoutExpired:
                running.stop(f"cell timed out after {cell.timeout_s:g}s")
            finally:
                leftovers = kill_process_tree(process)
                self._running.remove(cell.id)
            tee.join(timeout=10)
            if leftovers and not running.stop_reason:
                log.write(f"\n[harness] killed {leftovers} process(es) the cell left behind\n".encode())
        return collect_cell_result(
            cell,
            results_dir,
            process.returncode,
            time.monotonic() - started,
            self.name,
            reason=running.stop_reason,
        )

    def interrupt(self) -> None:
        """Stop every running cell (Ctrl-C); their results say "interrupted"."""
        self._running.stop_all("interrupted")

    def close(self) -> None:
        """Stop anything still running; the run command calls it on every exit path."""
        self.interrupt()


def _copy_stream(source: IO[bytes] | None, sink: IO[bytes]) -> None:
    if source is None:
        return
    while chunk := source.read1(65536):  # type: ignore[attr-defined]
        sink.write(chunk)
        sink.flush()
