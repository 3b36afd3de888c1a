"""What `harness run` prints around its cells' progress: the notes as it starts, the verdict as it ends."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from harness.common.untrusted_text import print_line
from harness.presentation.markdown import render_table
from harness.presentation.problems import print_problems
from harness.results.report import ResultsReport

# Every failed test was printed as it failed, above: the end repeats the first few of each cell.
FAILURES_SHOWN_PER_CELL = 10
RESULT_FILES = "(summary.json, summary.md, junit.xml)"


def print_run_start(console: Console, notes: Iterable[str], warnings: Iterable[str]) -> None:
    """Notes (what was cleaned up, how cells are contained here) and oversubscription warnings."""
    for note in notes:
        print_line(console, f"note: {note}")
    for line in warnings:
        print_line(console, line)


def print_run_end(console: Console, report: ResultsReport, out: Path, *, interrupted: bool) -> None:
    """The result table, what went wrong, and where the results are with the exit code."""
    console.print(render_table(report))
    print_problems(console, report, logs_under=out, shown_per_cell=FAILURES_SHOWN_PER_CELL)
    if interrupted:
        console.print("Interrupted: running cells were stopped; the summary holds what finished.")
    print_line(console, f"Results: {out.resolve()} {RESULT_FILES} · exit code {report.exit_code}")
