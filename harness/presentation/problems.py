"""What went wrong, in lines: printed the same by `harness run`, `harness report` and `harness qualify`.

Per cell that failed, its failed tests one line each (as the Markdown words them), how many more there are,
its reason where no test says it, and its log; then flaky tests, quarantine, bench results that are wrong
or miss a floor, skipped cells with their reasons, the required cells `--strict` misses, and why no test
ran. Every line holds words of the results (ids, messages, reasons): each is printed through `print_line`.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from harness.common.errors import EXIT_NO_TESTS, EXIT_STRICT
from harness.common.untrusted_text import print_line
from harness.results.cell_result import FAILING_STATUSES
from harness.results.files import LOG_TXT
from harness.results.junit import Failure
from harness.results.report import ResultsReport, missing_required, nothing_ran_reason


def print_problems(
    console: Console, report: ResultsReport, *, logs_under: Path = Path(), shown_per_cell: int | None = None
) -> None:
    """Every problem of `report`. Cells' relative results_dir are under `logs_under` (a run's directory;
    a merged report's are absolute); at most `shown_per_cell` failed tests of a cell are shown (None:
    every one whose details were read)."""
    for line in problem_lines(report, logs_under=logs_under, shown_per_cell=shown_per_cell):
        print_line(console, line)


def problem_lines(
    report: ResultsReport, *, logs_under: Path = Path(), shown_per_cell: int | None = None
) -> list[str]:
    """The lines `print_problems` prints."""
    lines = failed_cell_lines(report, logs_under, shown_per_cell)
    lines += [flaky.flaky_line() for flaky in report.flaky]
    lines += [*report.quarantine.failure_lines(), *report.quarantine.release_lines()]
    lines += bench_lines(report)
    skipped: dict[str, list[str]] = {}
    for cell in report.cells:
        if cell.status == "skipped":
            skipped.setdefault(cell.reason or "no reason given", []).append(cell.id)
    lines += [f"skipped {', '.join(ids)}: {reason}" for reason, ids in skipped.items()]
    if report.exit_code == EXIT_STRICT:
        missing = ", ".join(missing_required(report))
        lines.append(f"--strict: required cells did not run or errored: {missing}")
    if report.exit_code == EXIT_NO_TESTS:
        lines.append(nothing_ran_reason(report.cells))
    return lines


def failed_cell_lines(report: ResultsReport, logs_under: Path, shown_per_cell: int | None) -> list[str]:
    """Per cell that failed, errored or is missing: its failed tests, or its reason, and its log."""
    by_cell: dict[str, list[Failure]] = {}
    for failure in report.failures:
        by_cell.setdefault(failure.cell, []).append(failure)
    lines = []
    for cell in report.cells:
        if cell.status not in FAILING_STATUSES:
            continue
        failures = by_cell.get(cell.id, [])
        shown = failures if shown_per_cell is None else failures[:shown_per_cell]
        lines += [failure.one_line() for failure in shown]
        more = len(failures) - len(shown) + report.failures_left_out.get(cell.id, 0)
        if more > 0:
            lines.append(f"… and {more} more failed tests of {cell.id}: see its junit.xml")
        if not failures:
            reason = (cell.reason.strip().splitlines() or ["no reason recorded"])[0]
            lines.append(f"{cell.status.upper()} {cell.id}: {reason}")
        if cell.results_dir:
            lines.append(f"  full log: {logs_under / cell.results_dir / LOG_TXT}")
    return lines


def bench_lines(report: ResultsReport) -> list[str]:
    """One line per bench error, wrong result and floor missed, naming the device and world size."""
    return [
        f"BENCH {outcome.device} ws{outcome.world_size}: {line}"
        for outcome in report.bench
        for line in [outcome.error, *outcome.incorrect, *(v.message() for v in outcome.violations)]
        if line
    ]


def print_bench_problems(console: Console, report: ResultsReport) -> None:
    """`bench_lines`, printed (`harness qualify`: its run printed the rest)."""
    for line in bench_lines(report):
        print_line(console, line)
