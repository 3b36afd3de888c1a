"""Runs planned cells in parallel within the host's cores, never sharing a GPU between two cells.

A cpu cell of world size N wants N cores, a GPU cell wants its N GPUs (and one core); the matrix's `cores:`
says otherwise for a cell whose tests start processes of their own. A cell that wants
more cores than the host has still runs, alone, so nothing blocks forever. Ctrl-C stops every running
cell through its executor and marks what did not finish.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.errors import HarnessError
from harness.common.progress_events import ProgressCallback
from harness.planning.plan import PlannedCell
from harness.results.cell_dir import write_completion_record
from harness.results.cell_result import CellResult
from harness.running.executors.protocol import Executor

CellCallback = Callable[[PlannedCell], None]
ResultCallback = Callable[[CellResult], None]
INTERRUPTED = "interrupted"
NOT_RUN_INTERRUPTED = "not run: the run was interrupted"


@dataclass
class ResourcePool:
    """Cores and GPU ids free for cells; `jobs` caps cells at once (None: limited by cores only)."""

    cores: int
    gpu_ids: Mapping[str, list[int]] = field(default_factory=dict)
    jobs: int | None = None
    _cores_used: int = 0
    _running: int = 0
    _free_gpus: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._free_gpus = {device: list(ids) for device, ids in self.gpu_ids.items()}

    @staticmethod
    def cores_needed(planned: PlannedCell) -> int:
        """The matrix's `cores:`, else the cell's world size on cpu (one rank per core), else one core."""
        cell = planned.cell
        if cell.cores is not None:
            return cell.cores
        return cell.world_size if cell.device == "cpu" else 1

    def try_acquire(self, planned: PlannedCell) -> list[int] | None:
        """GPU ids for the cell (empty for cpu) when it may start now, else None."""
        if self.jobs is not None and self._running >= self.jobs:
            return None
        need = self.cores_needed(planned)
        # --jobs given: the user sized the parallelism; otherwise cores do, but an idle host takes any cell.
        if self.jobs is None and self._running and self._cores_used + need > self.cores:
            return None
        free = self._free_gpus.get(planned.cell.device, [])
        if planned.gpus_needed > len(free):
            return None
        gpus = free[: planned.gpus_needed]
        del free[: planned.gpus_needed]
        self._cores_used += need
        self._running += 1
        return gpus

    def release(self, planned: PlannedCell, gpus: list[int]) -> None:
        self._cores_used -= self.cores_needed(planned)
        self._running -= 1
        self._free_gpus.setdefault(planned.cell.device, []).extend(gpus)
        self._free_gpus[planned.cell.device].sort()


def error_result(planned: PlannedCell, executor: str, reason: str, duration: float = 0.0) -> CellResult:
    """A CellResult for a cell that did not produce one of its own."""
    cell = planned.cell
    return CellResult.of_cell(cell, "error", reason, executor=executor, duration_s=duration)


class CellScheduler:
    """Starts cells as resources free up, collects their results in finishing order."""

    def __init__(
        self,
        executors: Mapping[str, Executor],
        pool: ResourcePool,
        out_dir: Path,
        on_start: CellCallback,
        on_progress: ProgressCallback,
        on_finish: ResultCallback,
    ) -> None:
        self._executors = executors
        self._pool = pool
        self._out_dir = out_dir
        self._on_start = on_start
        self._on_progress = on_progress
        self._on_finish = on_finish
        self._done: queue.Queue[tuple[PlannedCell, list[int], CellResult]] = queue.Queue()

    def run(self, planned: list[PlannedCell]) -> tuple[list[CellResult], bool]:
        """Run every planned cell; returns (results, interrupted). Ctrl-C stops the running cells."""
        pending = [p for p in planned if p.executor is not None]
        running: dict[str, PlannedCell] = {}
        results: list[CellResult] = []
        try:
            while pending or running:
                pending = self._start_what_fits(pending, running)
                self._collect_one(running, results)
        except KeyboardInterrupt:
            self._stop_all(running, results)
            for cell in pending:
                result = error_result(cell, cell.executor or "", NOT_RUN_INTERRUPTED)
                results.append(result)
                self._on_finish(result)
            return results, True
        return results, False

    def _start_what_fits(
        self, pending: list[PlannedCell], running: dict[str, PlannedCell]
    ) -> list[PlannedCell]:
        waiting = []
        for planned in pending:
            gpus = self._pool.try_acquire(planned)
            if gpus is None:
                waiting.append(planned)
                continue
            running[planned.cell.id] = planned
            self._on_start(planned)
            thread = threading.Thread(
                target=self._run_one, args=(planned, gpus), name=planned.cell.id, daemon=True
            )
            thread.start()
        return waiting

    def _run_one(self, planned: PlannedCell, gpus: list[int]) -> None:
        executor_name = planned.executor or ""
        started = time.monotonic()
        try:
            executor = self._executors[executor_name]
            result = executor.run(planned.cell, self._out_dir / planned.cell.id, gpus, self._on_progress)
        except HarnessError as error:
            result = error_result(planned, executor_name, str(error), time.monotonic() - started)
        except Exception as error:  # an executor bug must not take the other cells down
            reason = f"the {executor_name} executor failed: {type(error).__name__}: {error}"
            result = error_result(planned, executor_name, reason, time.monotonic() - started)
        self._done.put((planned, gpus, result))

    def _collect_one(
        self, running: dict[str, PlannedCell], results: list[CellResult], timeout: float | None = 0.2
    ) -> None:
        try:
            planned, gpus, result = self._done.get(timeout=timeout)
        except queue.Empty:
            return
        self._pool.release(planned, gpus)
        running.pop(planned.cell.id, None)
        self._finish(result, results)

    def _finish(self, result: CellResult, results: list[CellResult]) -> None:
        """The cell's completion record, then the caller's callback: a record means the cell is done."""
        write_completion_record(result, self._out_dir / result.id)
        results.append(result)
        self._on_finish(result)

    def _stop_all(self, running: dict[str, PlannedCell], results: list[CellResult]) -> None:
        # A second Ctrl-C while cells are being stopped must not abandon them half-killed.
        previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        for executor in self._executors.values():
            executor.interrupt()
        while running:
            try:
                planned, gpus, result = self._done.get(timeout=60)
            except queue.Empty:
                break
            running.pop(planned.cell.id, None)
            self._pool.release(planned, gpus)
            if result.status != "passed":
                result.status = "error"
                # The executor's own reason says where the cell was (its test, its ranks still running).
                if not result.reason.startswith(INTERRUPTED):
                    result.reason = INTERRUPTED
            self._finish(result, results)
        for planned in running.values():
            result = error_result(planned, planned.executor or "", f"{INTERRUPTED}; the cell did not stop")
            self._finish(result, results)
        signal.signal(signal.SIGINT, previous_handler)
