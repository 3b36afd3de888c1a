"""Nothing of a run outlives its harness: the run record in OUT, and a guardian process that ends leftovers.

`harness run` writes OUT/.harness-run.json (its pid, host, run id and the run's cgroup) and starts
`python -m harness.running.guardian` in a session of its own, holding a pipe to its stdin. Every process of a
local cell is in the run's cgroup where the host gives one (harness.host.cgroups) and carries HARNESS_RUN_ID;
every container has the run's label (harness.running.containers); every Slurm job is named
comm-harness.<run id>. When the harness ends, it says so and the guardian exits; when the harness dies
(kill -9, a crash), the pipe closes and the guardian cancels the run's Slurm jobs, kills the run's cgroup
and every process that carries the run's id and removes the run's containers, within a second or two. A
later run into the same OUT that finds the record of a dead run ends its leftovers the same way, in case the
guardian died too; one that finds a live run refuses to mix its results with it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from harness.common.contract import RUN_ID_ENV
from harness.common.errors import ConfigurationError
from harness.host.cgroups import end_cgroup, is_run_cgroup, run_cgroup
from harness.host.processes import running
from harness.results.files import UnsafeResultFile, read_json, write_json
from harness.running.containers import remove_containers_of_run

RUN_RECORD = ".harness-run.json"
DONE = b"done\n"
KILL_ROUNDS_S = 5.0


def new_run_id() -> str:
    """A run id: what the run's processes and containers are found by."""
    return uuid.uuid4().hex[:12]


def processes_of_run(run_id: str) -> list[psutil.Process]:
    """Live processes (any user whose environment we may read) whose environment names `run_id`."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(RUN_ID_ENV) == run_id and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def with_descendants(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes and all below them: a cell runner, the child subreaper of its cell, has the cell's
    orphans (a daemon with a cleared environment) among its descendants, and they must be seen before
    the runner dies and they are re-parented to PID 1."""
    found = {process.pid: process for process in processes}
    for process in processes:
        try:
            found.update((child.pid, child) for child in process.children(recursive=True))
        except psutil.Error:
            continue
    return [process for process in found.values() if running(process)]


def kill_processes_of_run(run_id: str) -> int:
    """SIGKILL every process of the run and its descendants, again until none is left (a dying fork may
    have made more)."""
    killed: set[int] = set()
    deadline = time.monotonic() + KILL_ROUNDS_S
    while time.monotonic() < deadline:
        found = with_descendants(processes_of_run(run_id))
        if not found:
            break
        for process in found:
            try:
                process.send_signal(signal.SIGKILL)
                killed.add(process.pid)
            except psutil.Error:
                pass
        psutil.wait_procs(found, timeout=0.5)
    return len(killed)


def end_leftovers(run_id: str, cgroup: Path | None = None) -> str:
    """Cancel the run's Slurm jobs, kill its cgroup and processes, remove its containers; a line saying what
    was ended ('' for nothing)."""
    # Here, not at the top: harness.running.executors imports this module.
    from harness.running.executors.slurm_jobs import cancel_jobs_of_run

    jobs = cancel_jobs_of_run(run_id)
    processes = end_cgroup(cgroup) if cgroup is not None else 0
    processes += kill_processes_of_run(run_id)
    containers = remove_containers_of_run(run_id)
    if not processes and not containers and not jobs:
        return ""
    return (
        f"ended what run {run_id} left behind: {processes} process(es), {containers} container(s), "
        f"{jobs} Slurm job(s)"
    )


def _pid_is_alive_harness(pid: int) -> bool:
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return "harness" in command


class RunGuard:
    """The run record and the guardian of one run into `out_dir`; use as a context manager."""

    def __init__(self, out_dir: Path, run_id: str | None = None) -> None:
        self.out_dir = out_dir
        self.run_id = run_id or new_run_id()
        self.notes: list[str] = []
        self._guardian: subprocess.Popen[bytes] | None = None
        # Made by the local executor when it runs a cell (the same path: it is computed in this process).
        self.cgroup, _ = run_cgroup(self.run_id)

    @property
    def record_path(self) -> Path:
        return self.out_dir / RUN_RECORD

    def __enter__(self) -> RunGuard:
        self._end_dead_run()
        record: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": self.run_id,
            "started": time.time(),
        }
        if self.cgroup is not None:
            record["cgroup"] = str(self.cgroup)
        write_json(self.record_path, record)
        cgroup_args = ["--cgroup", str(self.cgroup)] if self.cgroup is not None else []
        self._guardian = subprocess.Popen(
            [sys.executable, "-m", "harness.running.guardian", self.run_id, *cgroup_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        guardian = self._guardian
        if guardian is not None and guardian.stdin is not None:
            try:
                guardian.stdin.write(DONE)
                guardian.stdin.close()
            except OSError:
                pass
            try:
                guardian.wait(timeout=10)
            except subprocess.TimeoutExpired:
                guardian.kill()
        if self.cgroup is not None:
            end_cgroup(self.cgroup)
        self.record_path.unlink(missing_ok=True)

    def _end_dead_run(self) -> None:
        try:
            record: Any = read_json(self.record_path)
        except FileNotFoundError:
            return
        except (OSError, ValueError, UnsafeResultFile):
            record = None
        if not isinstance(record, dict):
            self.notes.append(f"{self.record_path}: unreadable run record replaced")
            return
        pid, host, run_id = record.get("pid"), record.get("host"), str(record.get("run_id", ""))
        if host == socket.gethostname() and isinstance(pid, int) and _pid_is_alive_harness(pid):
            raise ConfigurationError(
                f"{self.out_dir}: another harness run (pid {pid}) is writing its results there; "
                "wait for it to end, or pass another --out."
            )
        if run_id and host == socket.gethostname():
            cgroup = Path(str(record.get("cgroup", "")))
            note = end_leftovers(run_id, cgroup if is_run_cgroup(cgroup, run_id) else None)
            if note:
                self.notes.append(note)


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.running.guardian RUN_ID`: wait for the harness to end; clean up if it died."""
    parser = argparse.ArgumentParser(prog="python -m harness.running.guardian")
    parser.add_argument("run_id")
    parser.add_argument("--cgroup", type=Path, help="the run's cgroup: every process of its local cells")
    args = parser.parse_args(argv)
    # Ctrl-C at the terminal is the harness's to handle; the guardian only watches its pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    message = sys.stdin.buffer.read()
    if message != DONE:
        note = end_leftovers(args.run_id, args.cgroup)
        if note:
            print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
