"""Live progress of a run: which cell, which test, how long.

On a terminal, a rich live table of every cell; in CI logs (CI=true, or output not a terminal) plain lines
such as `[cpu-gloo-ws4] 12/40 tests/...::test_x PASSED 0.08s`, one per test and one per finished cell.
Events arrive from executor threads (the plugin's progress.jsonl, tailed), so every view takes a lock.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from harness.common.progress_events import BuildLine, Collected, ProgressEvent, Reported, Started
from harness.common.untrusted_text import print_line, terminal_text
from harness.config.model import QuarantineEntry
from harness.config.quarantine import entry_of
from harness.planning.plan import PlannedCell
from harness.presentation.markdown import STATUS_STYLE, counts_text
from harness.results.cell_result import CellResult
from harness.results.junit import rank_suffix

# The build log lines plain output shows: Docker's steps, the wheelhouse and base image, errors.
BUILD_LINES_SHOWN = ("Step ", "wheelhouse", "comm-harness", "ERROR", "Successfully")
# Lines of an errored cell's reason shown under its finish line (the log tail has more).
REASON_LINES = 6


@dataclass
class CellProgress:
    """What is known of one cell while it runs."""

    status: str = "waiting"
    total: int | None = None
    done: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    known_gaps: int = 0
    current: str = ""
    started: float | None = None
    duration: float | None = None
    reason: str = ""
    # The cell's `quarantine:` entries: a failure of one of their tests is QUARANTINED, not FAILED.
    quarantine: tuple[QuarantineEntry, ...] = ()

    def apply(self, event: ProgressEvent) -> str | None:
        """Update from one progress event; returns the test's outcome word when the test is done."""
        if isinstance(event, BuildLine):
            self.current = f"building the image: {event.line}"
        elif isinstance(event, Collected):
            self.total = event.count
        elif isinstance(event, Started):
            self.current = event.nodeid
        elif isinstance(event, Reported):
            when, outcome = event.when, event.outcome
            if when == "call" or (when == "setup" and outcome != "passed"):
                self.done += 1
                word = {"passed": "PASSED", "failed": "FAILED", "skipped": "SKIPPED"}[outcome]
                if when == "setup" and outcome == "failed":
                    word = "ERROR"
                known_gap = outcome == "skipped" and event.known_gap
                if known_gap:
                    word = "KNOWN GAP"
                nodeid = event.nodeid
                quarantined = outcome == "failed" and entry_of(self.quarantine, nodeid) is not None
                if quarantined:
                    word = "QUARANTINED"
                self.passed += outcome == "passed"
                self.failed += outcome == "failed" and not quarantined
                self.skipped += outcome == "skipped" and not known_gap
                self.known_gaps += known_gap
                return word
            if when == "teardown" and outcome == "failed":
                self.failed += 1
                return "ERROR in teardown"
        return None

    def counter(self) -> str:
        return f"{self.done}/{self.total}" if self.total is not None else str(self.done)


class ProgressView(Protocol):
    """What the run command tells the user as cells start, progress and finish; a context manager whose
    exit closes it (a live table stops redrawing)."""

    def cell_started(self, planned: PlannedCell) -> None: ...

    def event(self, cell_id: str, event: ProgressEvent) -> None: ...

    def cell_finished(self, result: CellResult) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def cause_suffix(event: Reported) -> str:
    """' [ranks 0, 1 of 2]: cause' for a failed test's event, as `harness report` words it; else ''."""
    message = event.message or ""
    return f"{rank_suffix(message)}: {message}" if message else ""


def _finish_lines(result: CellResult) -> list[str]:
    """The lines that say a cell finished; each is printed (and neutralised) on its own."""
    counts = result.counts
    if result.status == "skipped":
        return [f"[{result.id}] skipped: {result.reason}"]
    words = counts_text(counts)
    text = f"[{result.id}] {result.status.upper()}: {words} in {result.duration_s:.1f}s"
    if result.status in ("error", "incomplete") and result.reason:
        # A build or runner failure says its cause and its fix in the reason's last lines too.
        lines = [line for line in result.reason.splitlines() if line.strip()]
        return [f"{text} — {lines[0]}", *(f"    {line}" for line in lines[1:][-REASON_LINES:])]
    return [text]


class PlainProgress(ProgressView):
    """One line per test and per finished cell, for CI logs."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._cells: dict[str, CellProgress] = {}
        self._lock = threading.Lock()

    def cell_started(self, planned: PlannedCell) -> None:
        with self._lock:
            self._cells[planned.cell.id] = CellProgress(
                status="running", started=time.monotonic(), quarantine=planned.cell.quarantine
            )
            self._print(f"[{planned.cell.id}] started ({planned.executor}: {planned.reason})")

    def event(self, cell_id: str, event: ProgressEvent) -> None:
        with self._lock:
            progress = self._cells.setdefault(cell_id, CellProgress(status="running"))
            if isinstance(event, BuildLine):
                # One line per build step and per wheelhouse/base-image action, not Docker's every line.
                if event.line.startswith(BUILD_LINES_SHOWN):
                    self._print(f"[{cell_id}] build: {event.line}")
                return
            word = progress.apply(event)
            if word is not None and isinstance(event, Reported):
                line = f"[{cell_id}] {progress.counter()} {event.nodeid} {word} {event.duration:.2f}s"
                self._print(line + cause_suffix(event))

    def cell_finished(self, result: CellResult) -> None:
        with self._lock:
            for line in _finish_lines(result):
                self._print(line)

    def close(self) -> None:
        """Nothing to tear down for plain lines."""

    def _print(self, line: str) -> None:
        print_line(self._console, line)


class LiveProgress(ProgressView):
    """A rich live table of every cell, refreshed a few times a second."""

    def __init__(self, console: Console, planned: list[PlannedCell]) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._cells = {p.cell.id: CellProgress() for p in planned}
        for p in planned:
            if p.executor is None:
                self._cells[p.cell.id].status = "skipped"
                self._cells[p.cell.id].reason = p.reason
        self._live = Live(get_renderable=self._render, console=console, refresh_per_second=4, transient=False)
        self._live.start()

    def cell_started(self, planned: PlannedCell) -> None:
        with self._lock:
            cell = self._cells[planned.cell.id]
            cell.status, cell.started = "running", time.monotonic()
            cell.quarantine = planned.cell.quarantine
            cell.reason = planned.executor or ""

    def event(self, cell_id: str, event: ProgressEvent) -> None:
        with self._lock:
            word = self._cells.setdefault(cell_id, CellProgress(status="running")).apply(event)
        if isinstance(event, Reported) and word not in (None, "PASSED", "SKIPPED", "KNOWN GAP"):
            # Printed above the live table, where it stays once the table moves on.
            print_line(self._console, f"[{cell_id}] {event.nodeid} {word}{cause_suffix(event)}")

    def cell_finished(self, result: CellResult) -> None:
        with self._lock:
            cell = self._cells.setdefault(result.id, CellProgress())
            cell.status, cell.duration, cell.current = result.status, result.duration_s, ""
            cell.passed, cell.skipped = result.counts.passed, result.counts.skipped
            cell.failed = result.counts.failed + result.counts.errors
            cell.reason = (
                (result.reason.splitlines() or [""])[0] if result.status != "passed" else result.executor
            )

    def close(self) -> None:
        self._live.stop()

    def _render(self) -> Table:
        table = Table(expand=False)
        for column in ("cell", "status", "tests", "passed", "failed", "time", "now / why"):
            table.add_column(
                column, overflow="ellipsis", no_wrap=True, max_width=70 if column == "now / why" else None
            )
        with self._lock:
            for cell_id, cell in self._cells.items():
                elapsed = cell.duration
                if elapsed is None and cell.started is not None:
                    elapsed = time.monotonic() - cell.started
                style = STATUS_STYLE.get(cell.status, "cyan")
                # Test ids and reasons come from the cell: Text, never parsed as markup.
                table.add_row(
                    terminal_text(cell_id),
                    terminal_text(cell.status, style),
                    cell.counter() if cell.status != "skipped" else "-",
                    str(cell.passed),
                    str(cell.failed),
                    f"{elapsed:.1f}s" if elapsed is not None else "-",
                    terminal_text(cell.current or cell.reason),
                )
        return table


def use_plain_output(console: Console) -> bool:
    """Plain lines in CI (CI=true) and when output is not a terminal."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or not console.is_terminal


def make_progress_view(console: Console, planned: list[PlannedCell]) -> ProgressView:
    """The live table on a terminal, plain lines otherwise."""
    return PlainProgress(console) if use_plain_output(console) else LiveProgress(console, planned)
