"""The cells an executor is running right now, so that Ctrl-C can stop all of them at once."""

from __future__ import annotations

import threading
from typing import Protocol


class Stoppable(Protocol):
    """A running cell's handle: a process group or a container."""

    def stop(self, reason: str) -> None: ...


class RunningCells:
    """Thread-safe registry of running cells, by cell id; both executors run cells on several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, Stoppable] = {}

    def add(self, cell_id: str, running: Stoppable) -> None:
        with self._lock:
            self._cells[cell_id] = running

    def remove(self, cell_id: str) -> None:
        with self._lock:
            self._cells.pop(cell_id, None)

    def stop_all(self, reason: str) -> None:
        """Stop every running cell, concurrently: each stop may wait seconds for a graceful exit."""
        with self._lock:
            running = list(self._cells.values())
        threads = [threading.Thread(target=cell.stop, args=(reason,)) for cell in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
