"""The executor protocol: what `runs.py` and the scheduler ask of `local`, `docker` and `slurm`."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar

from harness.common.progress_events import ProgressCallback
from harness.config.model import Cell
from harness.results.cell_result import CellResult

_E = TypeVar("_E", bound="Executor")


class Executor(Protocol):
    """Runs one cell to completion and never leaves a process or container behind.

    Everything the runner asks of an executor; executors subclass it for the defaults of what they have
    nothing to do for. A context manager: leaving the `with` closes it, however the run ended.
    """

    name: str

    def start(self) -> list[str]:
        """Get ready for a run (end what a dead harness left); notes for the user. Nothing by default."""
        return []

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

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
