"""Runs a cell on this host: `python -m harness.cell.runner` in its own process group, output teed to log.txt.

The cell's cgroup is the unit of cleanup where the host gives one (harness.host.cgroups): on timeout, Ctrl-C
or
a normal end, every process in it is killed, however it detached, so no process outlives its cell. The
process group, the runner's descendants (it is their child subreaper) and HARNESS_RUN_ID are killed too,
and are all there is without a cgroup. The runner kills its descendants itself when the harness dies (it
watches its parent); the run guardian and a later run end the run's cgroup and tagged processes.
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

from harness.common.contract import CELL_CGROUP_ENV, RUN_ID_ENV
from harness.common.progress_events import ProgressCallback
from harness.config.model import Cell
from harness.host.cgroups import RunCgroup, run_cgroup
from harness.results.bounded_log import BoundedLog
from harness.results.cell_dir import collect_cell_result, prepare_cell_dir
from harness.results.cell_result import CellResult
from harness.results.files import CELL_JSON, LOG_TXT, PROGRESS_JSONL, harvest_work_dir
from harness.running.executors.progress_reader import ProgressReader
from harness.running.executors.protocol import Executor
from harness.running.executors.running import RunningCells
from harness.running.guardian import new_run_id

# How long a cell may take to wind down after SIGINT (pytest then still writes junit.xml) before SIGKILL:
# seconds on a loaded host, and a cell that is quick about it is not kept waiting.
INTERRUPT_GRACE_S = 20.0
PACKAGE_PARENT = Path(__file__).resolve().parents[3]


def gpu_visibility_env(device: str, gpu_ids: list[int]) -> dict[str, str]:
    """The variable that limits a cell to its GPUs: CUDA_VISIBLE_DEVICES or ZE_AFFINITY_MASK."""
    ids = ",".join(str(gpu) for gpu in gpu_ids)
    if device == "cuda":
        return {"CUDA_VISIBLE_DEVICES": ids}
    if device == "xpu":
        return {"ZE_AFFINITY_MASK": ids}
    return {}


def cell_environment(
    cell: Cell, gpu_ids: list[int], base: dict[str, str] | None = None, run_id: str = ""
) -> dict[str, str]:
    """The runner's environment: the host's, the cell's `env`, GPU visibility, and harness importable."""
    env = dict(os.environ if base is None else base)
    env.update(cell.env)
    if run_id:
        env[RUN_ID_ENV] = run_id
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
        """Ask the runner to wind down (SIGINT), then kill the group after the grace period.

        Only the runner is signalled: it forwards one SIGINT to pytest. Signalling the group would reach
        pytest twice (directly and forwarded), and a second interrupt loses the finished tests' junit.xml.
        """
        with self.lock:
            if self.stop_reason:
                return
            self.stop_reason = reason
        try:
            self.process.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass
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


class LocalExecutor(Executor):
    """Runs cells as subprocesses of the harness, in the project root."""

    name = "local"

    def __init__(self, project_root: Path, *, run_id: str = "") -> None:
        self.project_root = project_root
        self.run_id = run_id
        self._running = RunningCells()
        path, self._no_cgroup = run_cgroup(run_id or new_run_id())
        self._cgroup = RunCgroup(path) if path is not None else None
        # Said once as the run starts (`start`) and in every cell's log.
        self.notes: list[str] = [] if self._cgroup else [no_cgroup_note(self._no_cgroup)]

    def start(self) -> list[str]:
        """Why local cells run without a cgroup, where they do."""
        return list(self.notes)

    def _make_cell_cgroup(self, cell: Cell, log: BoundedLog) -> Path | None:
        """The cell's cgroup, or None (said in the log) where the host refuses one."""
        why = self._no_cgroup
        if self._cgroup is not None:
            try:
                return self._cgroup.open_cell(cell.id)
            except OSError as error:
                why = f"cannot make a cgroup in {self._cgroup.path}: {error}"
        note = no_cgroup_note(why)
        if note not in self.notes:
            self.notes.append(note)
        log.write(f"[harness] {note}\n".encode())
        return None

    def run(
        self, cell: Cell, results_dir: Path, gpu_ids: list[int], on_progress: ProgressCallback
    ) -> CellResult:
        """Run the cell to completion (or timeout) and collect its result."""
        work_dir = prepare_cell_dir(cell, results_dir)
        work_dir = work_dir.resolve()
        command = [sys.executable, "-m", "harness.cell.runner", str(work_dir / CELL_JSON), str(work_dir)]
        started = time.monotonic()
        with (
            BoundedLog(results_dir / LOG_TXT) as log,
            ProgressReader(work_dir / PROGRESS_JSONL, cell.id, on_progress),
        ):
            env = cell_environment(cell, gpu_ids, run_id=self.run_id)
            cgroup = self._make_cell_cgroup(cell, log)
            if cgroup is not None:
                env[CELL_CGROUP_ENV] = str(cgroup)
            process = subprocess.Popen(
                command,
                cwd=self.project_root,
                env=env,
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
                if cgroup is not None and self._cgroup is not None:
                    leftovers += self._cgroup.close_cell(cgroup)
                self._running.remove(cell.id)
            tee.join(timeout=10)
            if leftovers and not running.stop_reason:
                log.write(f"\n[harness] killed {leftovers} process(es) the cell left behind\n".encode())
        refused = harvest_work_dir(results_dir)
        return collect_cell_result(
            cell,
            results_dir,
            process.returncode,
            time.monotonic() - started,
            self.name,
            reason=running.stop_reason,
            refused=refused,
        )

    def interrupt(self) -> None:
        """Stop every running cell (Ctrl-C); their results say "interrupted"."""
        self._running.stop_all("interrupted")

    def close(self) -> None:
        """Stop anything still running; the run command calls it on every exit path."""
        self.interrupt()


def no_cgroup_note(why: str) -> str:
    """What a local run without cgroups contains, and what it cannot."""
    return (
        f"local cells run without a cgroup ({why}): their processes are ended by process group, by the "
        "cell runner as child subreaper and by HARNESS_RUN_ID; a test that kills its cell runner and then "
        "detaches with a cleared environment can outlive the run (run as root, or use --executor docker)"
    )


def _copy_stream(source: IO[bytes] | None, sink: BoundedLog) -> None:
    if source is None:
        return
    while chunk := source.read1(65536):  # type: ignore[attr-defined]
        sink.write(chunk)
        sink.flush()
