"""What became of quarantined tests (matrix.yaml's `quarantine:`, matched by harness/config/quarantine.py):
per cell, each entry's tests that ran and failed; per run, the quarantined failures and the entries that
could be released.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.config.model import QuarantineEntry
from harness.config.quarantine import entry_of
from harness.results.cell_result import CellResult, QuarantineFailure, QuarantineRecord, TestCounts
from harness.results.junit import FLAKY_TAGS, failure_of, node_id_of

# Failures kept per entry and cell: the rest are counted (a whole file quarantined can fail many tests).
FAILURES_KEPT = 10


class QuarantineTally:
    """An `OnCase` for a cell's junit.xml: per entry, how many of its tests ran and failed, with the first
    failures' texts; `counts_without` then moves quarantined failures out of the cell's failed/errors."""

    def __init__(self, cell_id: str, entries: Iterable[QuarantineEntry]) -> None:
        self.cell_id = cell_id
        self.entries = tuple(entries)
        self._records: dict[str, QuarantineRecord] = {}
        self.failed = 0
        self.errors = 0

    def __call__(self, case: ET.Element, suite: int | None = None) -> None:
        if not self.entries:
            return
        node_id = node_id_of(case)
        entry = entry_of(self.entries, node_id)
        if entry is None:
            return
        record = self._records.setdefault(
            entry.test, QuarantineRecord(entry.test, entry.reason, entry.issue, entry.source)
        )
        tags = [child.tag for child in case]
        if "skipped" in tags:
            return
        record.ran += 1
        self.failed += tags.count("failure")
        self.errors += tags.count("error")
        problems = [child for child in case if child.tag in ("failure", "error", *FLAKY_TAGS)]
        if not problems:
            return
        record.failed += 1
        if len(record.failures) < FAILURES_KEPT:
            summary = failure_of(self.cell_id, case, problems[0]).summary
            record.failures.append(QuarantineFailure(node_id, summary))

    def counts_without(self, counts: TestCounts) -> TestCounts:
        """`counts` with the quarantined tests' failures and errors counted as quarantined."""
        counts.failed = max(0, counts.failed - self.failed)
        counts.errors = max(0, counts.errors - self.errors)
        counts.quarantined += self.failed + self.errors
        return counts

    def records(self) -> list[QuarantineRecord]:
        """The per-entry records a CellResult keeps (entries that named no test of the cell left out)."""
        return list(self._records.values())


@dataclass(frozen=True)
class QuarantinedFailure:
    """A quarantined test that failed in a cell (not failing it), with its entry's reason and issue."""

    cell: str
    test: str
    summary: str
    reason: str
    issue: str


@dataclass(frozen=True)
class ReleaseCandidate:
    """A quarantine entry whose tests passed every attempt in every cell they ran in."""

    test: str
    reason: str
    issue: str
    ran: int


@dataclass
class QuarantineOutcome:
    """What a run says of its quarantine entries: the quarantined failures, and the entries whose tests
    passed every attempt in every cell they ran in (candidates to release)."""

    failures: list[QuarantinedFailure] = field(default_factory=list)
    release_candidates: list[ReleaseCandidate] = field(default_factory=list)

    def failure_lines(self) -> list[str]:
        """'QUARANTINED cell test: summary (reason; issue)' per quarantined failure."""
        return [
            f"QUARANTINED {f.cell} {f.test}: {f.summary} (quarantined: {f.reason}; {f.issue})"
            for f in self.failures
        ]

    def release_lines(self) -> list[str]:
        """'RELEASE? pattern: quarantined (issue), but ...: a candidate to release' per entry."""
        return [
            f"RELEASE? {e.test}: quarantined ({e.issue}), but its tests passed every attempt in "
            f"every cell of this run ({e.ran} test run(s)): a candidate to release"
            for e in self.release_candidates
        ]

    def to_json(self) -> dict[str, list[dict[str, object]]]:
        return {
            "failures": [f.__dict__ for f in self.failures],
            "release_candidates": [e.__dict__ for e in self.release_candidates],
        }


def quarantine_outcome(cells: Iterable[CellResult]) -> QuarantineOutcome:
    """The run's quarantine outcome from its cells' quarantine records."""
    outcome = QuarantineOutcome()
    first: dict[str, QuarantineRecord] = {}
    ran: dict[str, int] = {}
    failed: set[str] = set()
    for cell in cells:
        for record in cell.quarantine:
            first.setdefault(record.test, record)
            ran[record.test] = ran.get(record.test, 0) + record.ran
            if record.failed or cell.status not in ("passed", "failed"):
                failed.add(record.test)
            outcome.failures += [
                QuarantinedFailure(cell.id, f.test, f.summary, record.reason, record.issue)
                for f in record.failures
            ]
    outcome.release_candidates = [
        ReleaseCandidate(test, record.reason, record.issue, ran[test])
        for test, record in first.items()
        if ran[test] and test not in failed
    ]
    return outcome
