"""The typed report every output is rendered from: cells, their failures, bench outcomes, the exit code.

`harness run` builds one over its own summary after every cell (summary.md), `harness report` and
`harness qualify` over merged results; harness/presentation/markdown.py turns any of them into the terminal
table, Markdown and GitHub annotations, so all of them say the same thing the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.bench.floors import Floor
from harness.bench.verdict import BenchOutcome
from harness.common.errors import EXIT_INTERRUPTED, EXIT_NO_TESTS, EXIT_OK, EXIT_STRICT, EXIT_TEST_FAILURES
from harness.results.cell_result import FAILING_STATUSES, NOT_RUN_STATUSES, CellResult, RunSummary
from harness.results.junit import JUNIT_XML, CellFailures, Failure, junit_failures
from harness.results.quarantine import QuarantineOutcome, quarantine_outcome


def now_iso() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def compute_exit_code(cells: Iterable[CellResult], *, strict: bool, interrupted: bool) -> int:
    """130 interrupted; 3 --strict and a required cell did not run to a verdict; 1 failures (and with
    --strict, flaky tests: passed only on a retry); 5 no test executed in any cell (pytest's "no tests ran");
    else 0."""
    cells = list(cells)
    if interrupted:
        return EXIT_INTERRUPTED
    if strict and any(c.required and c.status in NOT_RUN_STATUSES for c in cells):
        return EXIT_STRICT
    if any(c.status in FAILING_STATUSES for c in cells):
        return EXIT_TEST_FAILURES
    if strict and any(c.counts.flaky for c in cells):
        return EXIT_TEST_FAILURES
    if tests_executed(cells) == 0:
        return EXIT_NO_TESTS
    return EXIT_OK


def tests_executed(cells: Iterable[CellResult]) -> int:
    """Tests that ran to an outcome (passed, failed, errored or quarantined) over all cells; skipped tests and
    holding known gaps' strict xfails ran, but decided nothing, so they are left out."""
    return sum(c.counts.passed + c.counts.failed + c.counts.errors + c.counts.quarantined for c in cells)


def nothing_ran_reason(cells: list[CellResult]) -> str:
    """The one line that says why a run or report exits 5: which cells were skipped, which ran no test."""
    if not cells:
        return "no test ran: no cell was selected"
    skipped = [c for c in cells if c.status == "skipped"]
    if len(skipped) == len(cells):
        reasons = sorted({(c.reason or "no reason given").splitlines()[0] for c in skipped})
        return f"no test ran: every cell was skipped ({'; '.join(reasons)})"
    empty = [c.id for c in cells if c.status != "skipped"]
    return (
        f"no test ran: {', '.join(empty)} collected no test or skipped every one "
        "(check `tests:`, `markers:` and `keyword:` in the matrix, or -k)"
    )


@dataclass
class ResultsReport:
    """A summary with what its cells' files and bench documents say."""

    summary: RunSummary
    failures: list[Failure]
    exit_code: int
    bench: list[BenchOutcome]
    floors: list[Floor]
    # The (device, world size) pairs the report expected (--matrix, qualify's required cells); a floor
    # elsewhere is not reported as unmeasured. None: every floor's pairs.
    floor_scope: set[tuple[str, int]] | None = None
    # Per cell, its failed tests beyond those `failures` details (FAILURE_DETAILS per cell): counted only.
    failures_left_out: dict[str, int] = field(default_factory=dict)
    # Tests that passed on a retry (or some repeats): warnings, not failures (unless --strict).
    flaky: list[Failure] = field(default_factory=list)

    @property
    def cells(self) -> list[CellResult]:
        return self.summary.cells

    @property
    def quarantine(self) -> QuarantineOutcome:
        """Quarantined tests that failed (not failing their cells), and entries that could be released."""
        return quarantine_outcome(self.cells)


def cell_failures(cell: CellResult, base: Path) -> CellFailures:
    """The failed tests of a cell that failed or errored (quarantined ones left out), and its flaky tests,
    from its junit.xml (results_dir under `base`)."""
    if (cell.status not in FAILING_STATUSES and not cell.counts.flaky) or not cell.results_dir:
        return CellFailures(cell.id)
    found = junit_failures(cell.id, base / cell.results_dir / JUNIT_XML, quarantine=cell.quarantine)
    if cell.status not in FAILING_STATUSES:
        found.failures, found.left_out = [], 0
    return found


def failures_report(
    summary: RunSummary, of_cells: Iterable[CellFailures], exit_code: int, **fields: Any
) -> ResultsReport:
    """The report of `summary` with its cells' failures (`fields`: bench, floors, floor_scope)."""
    failures: list[Failure] = []
    flaky: list[Failure] = []
    left_out: dict[str, int] = {}
    for found in of_cells:
        failures += found.failures
        flaky += found.flaky
        if found.left_out:
            left_out[found.cell] = found.left_out
    fields = {"bench": [], "floors": [], **fields}
    return ResultsReport(summary, failures, exit_code, failures_left_out=left_out, flaky=flaky, **fields)


def report_of_summary(
    summary: RunSummary, base: Path, known: dict[str, CellFailures] | None = None
) -> ResultsReport:
    """The report of one run's summary, its cells' results_dir relative to `base` (summary.md's view);
    a cell's failures are read from its junit.xml unless `known` has them."""
    exit_code = summary.exit_code
    if exit_code is None:
        exit_code = compute_exit_code(summary.cells, strict=summary.strict, interrupted=False)
    known = known or {}
    found = (known.get(cell.id) or cell_failures(cell, base) for cell in summary.cells)
    return failures_report(summary, found, exit_code)


def missing_required(report: ResultsReport) -> list[str]:
    """Required cells that did not run to a verdict (skipped, errored, incomplete, missing)."""
    return [c.id for c in report.cells if c.required and c.status in NOT_RUN_STATUSES]


def report_json(report: ResultsReport, relative_to: Path) -> dict[str, Any]:
    """The summary with failures and bench outcomes; paths relative to `relative_to`."""
    summary = report.summary.to_json()
    for cell in summary["cells"]:
        cell["results_dir"] = os.path.relpath(cell["results_dir"], relative_to) if cell["results_dir"] else ""
    summary["failures"] = [failure.to_json() for failure in report.failures]
    summary["failures_left_out"] = report.failures_left_out
    summary["flaky"] = [failure.to_json() for failure in report.flaky]
    summary["quarantine"] = report.quarantine.to_json()
    summary["bench"] = [
        {**outcome.to_json(), "document": os.path.relpath(outcome.path, relative_to)}
        for outcome in report.bench
    ]
    summary["floors_checked"] = len(report.floors)
    return summary
