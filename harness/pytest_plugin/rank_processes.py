"""The pytest process's handle on a set of forked rank processes: fork, collect, dump stacks, kill, reap."""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from harness.common.contract import TIMEOUT_SOURCE_ENV
from harness.pytest_plugin import rank as rank_process
from harness.pytest_plugin.desync.native_stacks import dump_native_stacks
from harness.pytest_plugin.desync.trace_file import RankTrace, read_trace, trace_path_of
from harness.pytest_plugin.lifetime import flush_stdio
from harness.pytest_plugin.outcomes import TIMED_OUT, RankOutcome, RankProblem, describe_exit

# rank_main(rank, results, requests): the body of one rank process; requests is None unless asked for.
RankMain = Callable[[int, Connection, "Connection | None"], None]

_STACK_DUMP_WAIT_S = 3.0
_EXIT_AFTER_EOF_WAIT_S = 5.0


class RanksInterrupted(KeyboardInterrupt):
    """KeyboardInterrupt while ranks were running a test: which had reported, and the stacks of the others.

    Ranks are numbered as `RankProcesses` numbers its processes (0 .. its world_size - 1).
    """

    def __init__(self, world_size: int, finished: list[int], stacks: dict[int, str]) -> None:
        super().__init__()
        self.world_size = world_size
        self.finished = sorted(finished)
        self.stacks = stacks  # rank -> Python stack, for every rank still running

    @property
    def running(self) -> list[int]:
        return sorted(self.stacks)


class RankProcesses:
    """`world_size` ranks forked from this process into a process group of their own.

    Use it as a context manager: on leaving, every rank still alive is SIGKILLed and every rank is reaped,
    whatever happened in between (a failure, a timeout, KeyboardInterrupt).
    """

    def __init__(self, world_size: int, workdir: Path, with_requests: bool = False) -> None:
        self.world_size = world_size
        self._workdir = workdir
        self._with_requests = with_requests
        self._pids: list[int] = []
        self._pgid = 0
        self._exit_status: dict[int, int] = {}  # pid -> wait status, once reaped
        self._results: list[Connection] = []
        self._requests: list[Connection] = []

    def __enter__(self) -> RankProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    @property
    def pids(self) -> list[int]:
        return list(self._pids)

    def start(self, rank_main: RankMain) -> None:
        """Fork every rank; each runs `rank_main` and never returns into pytest."""
        parent_pid = os.getpid()
        flush_stdio()
        for rank in range(self.world_size):
            results_read, results_write = Pipe(duplex=False)
            requests_read, requests_write = Pipe(duplex=False) if self._with_requests else (None, None)
            pid = os.fork()
            if pid == 0:
                # A rank holding another rank's pipe ends would hide that rank's death (no EOF) from us.
                for conn in (*self._results, *self._requests, results_read, requests_write):
                    if conn is not None:
                        conn.close()
                rank_process.become_rank(
                    rank,
                    parent_pid,
                    self._pgid,
                    str(self._stack_path(rank)),
                    functools.partial(rank_main, rank, results_write, requests_read),
                )
            results_write.close()
            if requests_read is not None:
                requests_read.close()
                self._requests.append(requests_write)
            self._results.append(results_read)
            self._pids.append(pid)
            self._pgid = self._pgid or pid
            try:
                os.setpgid(pid, self._pgid)  # also done by the child; whichever runs first wins the race
            except OSError:
                pass

    def send_all(self, message: Any) -> None:
        """Send one request to every rank; a dead rank shows up as EOF in `collect`."""
        for conn in self._requests:
            try:
                conn.send(message)
            except (BrokenPipeError, OSError):
                pass

    def collect(
        self, deadline: float, timeout_s: float, grace_s: float
    ) -> tuple[list[RankOutcome], list[RankProblem]]:
        """Wait for one outcome per rank until `deadline` (monotonic); once a rank fails or dies, the others
        get `grace_s` more. Ranks still running then are dumped (Python stacks, and native ones if py-spy is
        installed) and killed, and become problems. KeyboardInterrupt meanwhile becomes RanksInterrupted."""
        waiting = {conn: rank for rank, conn in enumerate(self._results)}
        outcomes: list[RankOutcome] = []
        ended: list[int] = []
        try:
            stop_at, first_trouble = self._wait_for_outcomes(waiting, outcomes, ended, deadline, grace_s)
        except KeyboardInterrupt:
            # Ctrl-C (the cell runner's SIGINT): say which ranks were still in the test, and where.
            still_running = sorted(waiting.values())
            raise RanksInterrupted(
                self.world_size,
                [rank for rank in range(self.world_size) if rank not in still_running],
                self.dump_stacks(still_running),
            ) from None
        problems = [
            RankProblem(rank, describe_exit(self._wait_exit(rank)), self._read_stack(rank) or None)
            for rank in ended
        ]
        still_running = sorted(waiting.values())
        if still_running:
            if stop_at >= deadline:
                source = os.environ.get(TIMEOUT_SOURCE_ENV) or "--dist-timeout"
                what = f"{TIMED_OUT}{timeout_s:g} s ({source})"
            else:
                what = f"still running {grace_s:g} s after rank {first_trouble} ended; stopped"
            stacks = self.dump_stacks(still_running)
            native = dump_native_stacks({rank: self._pids[rank] for rank in still_running}) or {}
            problems += [
                RankProblem(rank, what, stacks[rank], running=True, native_stack=_native_frames(native, rank))
                for rank in still_running
            ]
            self.kill()
        return sorted(outcomes, key=lambda o: o.rank), problems

    def _wait_for_outcomes(
        self,
        waiting: dict[Connection, int],
        outcomes: list[RankOutcome],
        ended: list[int],
        deadline: float,
        grace_s: float,
    ) -> tuple[float, int | None]:
        """`collect`'s wait: moves each rank out of `waiting` as it reports (`outcomes`) or dies (`ended`);
        returns when it stopped waiting and the first rank that failed or died."""
        stop_at = deadline
        first_trouble: int | None = None
        while waiting:
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                break
            for conn in wait(list(waiting), remaining):
                rank = waiting.pop(conn)
                try:
                    outcome = conn.recv()
                except (EOFError, OSError):
                    ended.append(rank)
                    trouble = True
                else:
                    outcomes.append(outcome)
                    trouble = outcome.status != "passed"
                if trouble and first_trouble is None:
                    first_trouble = rank
                    stop_at = min(deadline, time.monotonic() + grace_s)
        return stop_at, first_trouble

    def dump_stacks(self, ranks: list[int]) -> dict[int, str]:
        """Make each rank write its Python stack (faulthandler on SIGUSR1) and read them back."""
        for rank in ranks:
            try:
                os.kill(self._pids[rank], signal.SIGUSR1)
            except ProcessLookupError:
                pass
        give_up = time.monotonic() + _STACK_DUMP_WAIT_S
        while time.monotonic() < give_up and not all(self._read_stack(rank) for rank in ranks):
            time.sleep(0.02)
        time.sleep(0.05)  # let a dump that has begun finish
        return {rank: self._read_stack(rank) for rank in ranks}

    def traces(self) -> list[RankTrace | None]:
        """Each rank's collective trace of the current test (collective_trace.py); needs no answer from it."""
        return [read_trace(trace_path_of(self._stack_path(rank)), rank) for rank in range(self.world_size)]

    def wait_for_exit(self, within_s: float) -> None:
        """Give ranks that have reported `within_s` to leave their group and exit; kill the rest."""
        give_up = time.monotonic() + within_s
        # A rank's pipe reaches EOF when the rank exits: wait on that rather than poll waitpid.
        open_pipes = list(self._results)
        while open_pipes and (remaining := give_up - time.monotonic()) > 0:
            for conn in wait(open_pipes, remaining):
                try:
                    conn.recv()
                except (EOFError, OSError):
                    open_pipes.remove(conn)
        self.kill()

    def kill(self) -> None:
        """SIGKILL every rank not yet reaped (and anything they started in their group), then reap them."""
        alive = [pid for pid in self._pids if pid not in self._exit_status]
        if alive:
            # The group still exists while one of its members is unreaped, so its id cannot have been reused.
            try:
                os.killpg(self._pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._reap(pid, block=True)
        for conn in (*self._results, *self._requests):
            conn.close()
        self._results, self._requests = [], []

    def _wait_exit(self, rank: int) -> int:
        pid = self._pids[rank]
        give_up = time.monotonic() + _EXIT_AFTER_EOF_WAIT_S
        while not self._reap(pid, block=False) and time.monotonic() < give_up:
            time.sleep(0.005)
        if pid not in self._exit_status:  # closed its pipe but will not exit: it will now
            os.kill(pid, signal.SIGKILL)
            self._reap(pid, block=True)
        return self._exit_status[pid]

    def _reap(self, pid: int, block: bool) -> bool:
        if pid in self._exit_status:
            return True
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            self._exit_status[pid] = status
        return bool(done)

    def _stack_path(self, rank: int) -> Path:
        return self._workdir / f"rank{rank}.stack"

    def _read_stack(self, rank: int) -> str:
        try:
            return _without_pytest_frames(self._stack_path(rank).read_text(errors="replace"))
        except FileNotFoundError:
            return ""


def _without_pytest_frames(dump: str) -> str:
    """Cut each thread of a faulthandler dump after the rank's own entry frame.

    A rank is a fork of pytest, so under the test's frames lie the plugin's and pytest's own (most recent
    call first): forty lines that say nothing about the test.
    """
    kept: list[str] = []
    cutting = False
    for line in dump.splitlines():
        if line.startswith("Extension modules:"):
            continue
        if not line.startswith("  File "):
            cutting = False
        elif cutting:
            continue
        elif _RANK_MODULE in line:
            cutting = True
            line += "  (pytest's frames below it omitted)"
        kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def _native_frames(native: dict[int, str], rank: int) -> str | None:
    """A py-spy dump cut like `_without_pytest_frames`, C++ names of monstrous length shortened."""
    dump = native.get(rank)
    if dump is None:
        return None
    kept: list[str] = []
    cutting = False
    for line in dump.splitlines():
        if not line.startswith("    "):  # a thread's header or a blank line between threads
            cutting = False
        elif cutting:
            continue
        elif _RANK_MODULE_IN_PY_SPY in line:
            cutting = True
            line += "  (pytest's frames below it omitted)"
        if len(line) > _NATIVE_FRAME_MAX:  # pybind11 template instances run to 2000 characters
            line = f"{line[: _NATIVE_FRAME_MAX - 60]} ... {line[-55:]}"
        kept.append(line)
    return "\n".join(kept)


_RANK_MODULE = rank_process.__file__
# py-spy names a frame's file by its path below the directory on sys.path: "harness/pytest_plugin/rank.py".
_RANK_MODULE_IN_PY_SPY = "/".join(Path(_RANK_MODULE).parts[-2:]) + ":"
_NATIVE_FRAME_MAX = 200
