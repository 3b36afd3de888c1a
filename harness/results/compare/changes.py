"""What `harness compare` found: one Change per difference, the --allow rules that accept some, the exit code.

Every Change has a kind from KINDS; the kind says whether it is a regression. A regression an --allow rule
matches is shown as allowed and does not set the exit code. Exit codes: 0 no regression, 1 a test or cell
regressed (bench rows may have too), 4 only bench rows regressed (beyond their noise), 2 bad input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from harness.common.errors import EXIT_OK, EXIT_TEST_FAILURES, ConfigurationError

EXIT_BENCH_REGRESSION = 4

# Kind: (is a regression, what it means). The vocabulary of --allow rules, the JSON and the tables.
KINDS: dict[str, tuple[bool, str]] = {
    "failed": (True, "a test that passed, skipped or was an expected failure now fails or errors"),
    "xpass": (True, "a strict expected failure now passes (XPASS(strict)): the gap it records is gone"),
    "new-failing": (True, "a test only NEW has, failing"),
    "gone": (True, "a test BASE ran that NEW's cell, run to its end, no longer has"),
    "cell-lost": (True, "a cell that ran in BASE is in no input of NEW"),
    "cell-failed": (True, "a cell that passed in BASE failed, errored or did not finish in NEW"),
    "cell-not-run": (True, "a cell that ran in BASE was skipped in NEW"),
    "bench-slower": (True, "a bench row slower beyond what both runs' repeats allow"),
    "bench-wrong": (True, "a bench row whose result was correct in BASE is wrong in NEW"),
    "bench-failed": (True, "a bench that finished in BASE did not finish in NEW"),
    "fixed": (False, "a test that failed, errored or was an expected failure now passes"),
    "new": (False, "a test only NEW has, not failing"),
    "now-xfail": (False, "a test now an expected failure (a gap recorded)"),
    "now-skipped": (False, "a test that ran in BASE is skipped in NEW"),
    "now-run": (False, "a test skipped in BASE runs in NEW"),
    "reason-changed": (False, "a skip or expected-failure reason (of a test or a cell) changed"),
    "cell-added": (False, "a cell only NEW has"),
    "cell-dropped": (False, "a cell BASE skipped is in no input of NEW"),
    "cell-fixed": (False, "a cell that failed or errored in BASE passed in NEW"),
    "cell-now-runs": (False, "a cell skipped in BASE ran in NEW"),
    "environment": (False, "a fingerprint fact changed (torch, CUDA, NCCL, driver, GPUs, image...)"),
    "bench-faster": (False, "a bench row faster beyond what both runs' repeats allow"),
    "bench-new": (False, "a bench row or document only NEW has"),
    "bench-gone": (False, "a bench row or document only BASE has"),
}


@dataclass
class Change:
    """One difference between BASE and NEW. `cell` is a cell id, or 'bench-<device>-ws<N>' for the bench;
    `test` a node id, an environment fact or a bench row. Every string but `kind` may come from a cell."""

    kind: str
    cell: str
    test: str = ""
    before: str = ""
    after: str = ""
    detail: str = ""
    allowed: bool = False

    @property
    def regression(self) -> bool:
        return KINDS[self.kind][0]

    @property
    def bench(self) -> bool:
        return self.kind.startswith("bench-")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "regression": self.regression}


@dataclass(frozen=True)
class AllowRule:
    """`--allow KIND[:CELL[:TEST]]`: the changes it accepts, each part a glob ('*' when left out)."""

    kind: str
    cell: str = "*"
    test: str = "*"

    @classmethod
    def parse(cls, text: str) -> AllowRule:
        """A rule from its command-line text; ConfigurationError naming what is wrong."""
        kind, _, rest = text.partition(":")
        cell, _, test = rest.partition(":")
        if not any(fnmatchcase(name, kind) for name in KINDS):
            raise ConfigurationError(
                f"--allow {text!r}: {kind!r} matches no kind of change; kinds: {', '.join(KINDS)}"
            )
        return cls(kind, cell or "*", test or "*")

    def matches(self, change: Change) -> bool:
        return (
            fnmatchcase(change.kind, self.kind)
            and fnmatchcase(change.cell, self.cell)
            and fnmatchcase(change.test, self.test)
        )


@dataclass
class CellRow:
    """One cell's line of the comparison: its status and test counts on each side ('' where absent)."""

    cell: str
    before: str
    after: str
    counts_before: dict[str, int] = field(default_factory=dict)
    counts_after: dict[str, int] = field(default_factory=dict)


@dataclass
class BenchRow:
    """One bench row found on both sides: medians, best repeats, the interval of NEW/BASE, the verdict."""

    where: str  # bench-<device>-ws<N>
    row: str
    base_us: float
    new_us: float
    ratio: float
    low: float
    high: float
    verdict: str  # slower, faster, within noise
    basis: str  # how the interval was made: the bootstrap and its repeats, or the best/median rule's inputs
    rule: str = "bootstrap"  # "bootstrap" (every repeat kept) or "best/median" (an older document)

    def interval(self) -> str:
        """'[+3.1 %, +12.0 %]': the interval of NEW's time over BASE's, as a change."""
        return f"[{_percent(self.low)}, {_percent(self.high)}]"

    def summary(self) -> str:
        """'+12.3 % [+8.1, +16.0] 95 % bootstrap CI of the ratio of medians, 21 vs 21 repeats'."""
        low, high = (self.low - 1) * 100, (self.high - 1) * 100
        return f"{_percent(self.ratio)} [{low:+.1f}, {high:+.1f}] {self.basis}"


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


@dataclass
class Comparison:
    """Everything `harness compare` says, rendered by render.py and written as JSON."""

    base: str
    new: str
    cells: list[CellRow]
    changes: list[Change]
    bench: list[BenchRow]
    threshold: float
    notes: list[str] = field(default_factory=list)

    def apply(self, rules: list[AllowRule]) -> None:
        """Mark the regressions the rules accept."""
        for change in self.changes:
            change.allowed = change.regression and any(rule.matches(change) for rule in rules)

    def regressions(self) -> list[Change]:
        return [change for change in self.changes if change.regression and not change.allowed]

    @property
    def exit_code(self) -> int:
        regressions = self.regressions()
        if any(not change.bench for change in regressions):
            return EXIT_TEST_FAILURES
        return EXIT_BENCH_REGRESSION if regressions else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "exit_code": self.exit_code,
            "regressions": len(self.regressions()),
            "bench_threshold_pct": self.threshold * 100,
            "cells": [asdict(row) for row in self.cells],
            "changes": [change.to_json() for change in self.changes],
            "bench": [{**asdict(row), "interval": row.interval()} for row in self.bench],
            "notes": self.notes,
        }
