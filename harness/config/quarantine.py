"""Quarantined tests (matrix.yaml's `quarantine:`): which tests an entry names, what became of them in a
cell, and which entries a whole run says could be released.

An entry's `test` is a pytest node id or a pattern of one: `*` stands for any run of characters (nothing
else is special, so a parametrization's brackets are literal), and a node id also names its
parametrizations (`t` names `t[2-gloo]`) and a file or class names the tests in it (`tests/x.py` names
`tests/x.py::t`). A quarantined test runs as any other; when it fails (or errors) the cell counts it as
quarantined instead of failed, and its verdict is that of the rest of its tests.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.config.model import QuarantineEntry, TestCounts
from harness.results.junit import FLAKY_TAGS, failure_of, node_id_of

# Failures kept per entry and cell: the rest are counted (a whole file quarantined can fail many tests).
FAILURES_KEPT = 10
_WORD = re.compile(r"[A-Za-z0-9_]")


def pattern_problem(pattern: str) -> str:
    """What is wrong with a `quarantine:` test pattern, or '' when nothing."""
    if not pattern.strip():
        return "is empty; write a pytest node id, e.g. tests/test_x.py::test_y"
    if any(character.isspace() for character in pattern):
        return f"{pattern!r} holds white space; a pytest node id has none"
    if not _WORD.search(pattern.replace("*", "")):
        return f"{pattern!r} would quarantine every test; name a file, class or test"
    return ""


def issue_problem(issue: str) -> str:
    """What is wrong with an entry's issue link, or '' when nothing."""
    if not re.fullmatch(r"https?://\S+", issue):
        return f"{issue!r} is not a link; write the issue's URL (https://...)"
    return ""


def _regex(pattern: str) -> re.Pattern[str]:
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    # A node id also names its parametrizations and, for a file or class, the tests in it.
    return re.compile(rf"{body}(?:\[.*|::.*)?", re.DOTALL)


def matches(pattern: str, node_id: str) -> bool:
    """Whether the `quarantine:` pattern names the test `node_id`."""
    return _regex(pattern).fullmatch(node_id) is not None


def entry_of(entries: Iterable[QuarantineEntry], node_id: str) -> QuarantineEntry | None:
    """The first entry that names `node_id`, or None."""
    return next((entry for entry in entries if matches(entry.test, node_id)), None)


@dataclass
class _EntryTally:
    entry: QuarantineEntry
    ran: int = 0
    failed: int = 0  # failed or errored, or passed only after failed attempts
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.entry.__dict__,
            "ran": self.ran,
            "failed": self.failed,
            "failures": self.failures,
        }


class QuarantineTally:
    """An `OnCase` for a cell's junit.xml: per entry, how many of its tests ran and failed, with the first
    failures' texts; `counts_without` then moves quarantined failures out of the cell's failed/errors."""

    def __init__(self, cell_id: str, entries: Iterable[QuarantineEntry]) -> None:
        self.cell_id = cell_id
        self.entries = tuple(entries)
        self._tallies: dict[str, _EntryTally] = {}
        self.failed = 0
        self.errors = 0

    def __call__(self, case: ET.Element, suite: int | None = None) -> None:
        if not self.entries:
            return
        node_id = node_id_of(case)
        entry = entry_of(self.entries, node_id)
        if entry is None:
            return
        tally = self._tallies.setdefault(entry.test, _EntryTally(entry))
        tags = [child.tag for child in case]
        if "skipped" in tags:
            return
        tally.ran += 1
        self.failed += tags.count("failure")
        self.errors += tags.count("error")
        problems = [child for child in case if child.tag in ("failure", "error", *FLAKY_TAGS)]
        if not problems:
            return
        tally.failed += 1
        if len(tally.failures) < FAILURES_KEPT:
            summary = failure_of(self.cell_id, case, problems[0]).summary
            tally.failures.append({"test": node_id, "summary": summary})

    def counts_without(self, counts: TestCounts) -> TestCounts:
        """`counts` with the quarantined tests' failures and errors counted as quarantined."""
        counts.failed = max(0, counts.failed - self.failed)
        counts.errors = max(0, counts.errors - self.errors)
        counts.quarantined += self.failed + self.errors
        return counts

    def to_json(self) -> list[dict[str, Any]]:
        """The per-entry record a CellResult keeps (entries that named no test of the cell left out)."""
        return [tally.to_json() for tally in self._tallies.values()]


@dataclass
class QuarantineOutcome:
    """What a run says of its quarantine entries: the quarantined failures, and the entries whose tests
    passed every attempt in every cell they ran in (candidates to release)."""

    # {"cell", "test", "summary", "reason", "issue"} per quarantined failure.
    failures: list[dict[str, str]] = field(default_factory=list)
    # {"test", "reason", "issue", "ran"} per entry that could be released.
    release_candidates: list[dict[str, Any]] = field(default_factory=list)

    def failure_lines(self) -> list[str]:
        """'QUARANTINED cell test: summary (reason; issue)' per quarantined failure."""
        return [
            f"QUARANTINED {f['cell']} {f['test']}: {f['summary']} (quarantined: {f['reason']}; {f['issue']})"
            for f in self.failures
        ]

    def release_lines(self) -> list[str]:
        """'RELEASE? pattern: quarantined (issue), but ...: a candidate to release' per entry."""
        return [
            f"RELEASE? {e['test']}: quarantined ({e['issue']}), but its tests passed every attempt in "
            f"every cell of this run ({e['ran']} test run(s)): a candidate to release"
            for e in self.release_candidates
        ]

    def to_json(self) -> dict[str, Any]:
        return {"failures": self.failures, "release_candidates": self.release_candidates}


def quarantine_outcome(cells: Iterable[dict[str, Any]]) -> QuarantineOutcome:
    """The run's quarantine outcome from its summary cells' `quarantine` records."""
    outcome = QuarantineOutcome()
    ran: dict[str, dict[str, Any]] = {}
    failed: set[str] = set()
    for cell in cells:
        for record in cell.get("quarantine") or []:
            if not isinstance(record, dict):
                continue
            test = str(record.get("test", ""))
            totals = ran.setdefault(test, {**record, "ran": 0})
            totals["ran"] += _count(record.get("ran"))
            if _count(record.get("failed")) or cell.get("status") not in ("passed", "failed"):
                failed.add(test)
            for failure in record.get("failures") or []:
                if isinstance(failure, dict):
                    outcome.failures.append(
                        {
                            "cell": str(cell.get("id", "")),
                            "test": str(failure.get("test", "")),
                            "summary": str(failure.get("summary", "")),
                            "reason": str(record.get("reason", "")),
                            "issue": str(record.get("issue", "")),
                        }
                    )
    outcome.release_candidates = [
        {key: totals[key] for key in ("test", "reason", "issue", "ran")}
        for test, totals in ran.items()
        if totals["ran"] and test not in failed
    ]
    return outcome


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
