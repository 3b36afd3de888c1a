"""The executor protocol: what `runs.py` and the scheduler ask of `local`, `docker` and `slurm`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from harness.config.model import Cell
from harness.results.cell_result import CellResult

# Called by executors as the cell makes progress: (cell id, event) where event is one JSON line of
# the plugin's progress file ({"event": "start"|"report", "nodeid": ..., ...}).
ProgressCallback = Callable[[str, dict[str, Any]], None]


class Executor(Protocol):
    """Runs one cell to completion and never leaves a process or container behind."""

    name: str

    def run(
        self,
        cell: Cell,
        results_dir: Path,
        gpu_ids: list[int],
        on_progress: ProgressCallback,
    ) -> CellResult: ...

    def interrupt(self) -> None:
        """Stop every running cell at once (Ctrl-C); their results say "interrupted"."""

    def close(self) -> None:
        """Stop anything still running and release what the executor holds (containers, ...)."""
