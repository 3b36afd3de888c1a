"""What each rank reported, or how it ended without reporting, and the one verdict pytest gets from them."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pytest

from harness.pytest_plugin.desync.desync_verdict import (
    CollectiveFindings,
    RankSituation,
    RankTrace,
    analyse,
    describe_ranks,
    innermost_test_frame,
)

RankStatus = Literal["passed", "failed", "skipped", "xfailed"]

NATIVE_STACKS_NEED_PY_SPY = "(native C/C++ stacks of the ranks still running need py-spy: pip install py-spy)"


@dataclass(frozen=True)
class RankWarning:
    """One warning a rank's test body raised and did not catch, as that rank's filters let it through."""

    category: str  # qualified name, e.g. "communicators.errors.All2AllBackendFallbackWarning"
    message: str
    filename: str
    lineno: int


@dataclass(frozen=True)
class WarningOnRanks:
    """One distinct warning of a test and the ranks that raised it."""

    warning: RankWarning
    ranks: tuple[int, ...]


@dataclass(frozen=True)
class RankOutcome:
    """Sent by a rank once its test body has finished."""

    rank: int
    status: RankStatus
    summary: str = ""  # one line: the exception or the skip/xfail reason
    detail: str = ""  # the failure as pytest formats it
    warnings: tuple[RankWarning, ...] = ()  # distinct, in the order they were raised


@dataclass(frozen=True)
class RankProblem:
    """A rank that never reported an outcome: it crashed, exited, hung or was stopped."""

    rank: int
    what: str  # completes "rank 1 of 4 ...", e.g. "killed by SIGSEGV"
    # The rank's Python stack: what a crash left behind, or what a hung rank dumped ("" when it could not);
    # None when there is none to show (the rank exited on its own).
    stack: str | None = None
    running: bool = False  # still running when stopped (hung or blocked), rather than ended by itself
    # A running rank's native stack from py-spy, or py-spy's error; None when py-spy is not installed.
    native_stack: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The test's result, over all ranks."""

    status: RankStatus
    message: str = ""
    warnings: tuple[WarningOnRanks, ...] = ()  # what the ranks' bodies raised, whatever the status

    def raise_into_pytest(self) -> None:
        """Turn a non-passing verdict into the pytest outcome exception (no traceback of the plugin's own)."""
        if self.status == "failed":
            pytest.fail(self.message, pytrace=False)
        if self.status == "skipped":
            # Report the skip at the test, not at this line.
            raise pytest.skip.Exception(self.message, _use_item_location=True)
        if self.status == "xfailed":
            pytest.xfail(self.message)


def describe_exit(status: int) -> str:
    """How a rank ended without reporting, from its wait status: 'killed by SIGSEGV', 'exited with code 3'."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"killed by {name}"
    return f"exited with code {os.WEXITSTATUS(status)} without reporting a result"


def judge(
    world_size: int,
    outcomes: list[RankOutcome],
    problems: list[RankProblem],
    traces: Sequence[RankTrace | None] = (),
) -> Verdict:
    """Pass only if every rank passed; any failure or problem fails; else a skip on any rank skips.

    A failure's message opens with the verdict on the ranks' collective `traces`, when they were traced.
    """
    raised = _merge_warnings(outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed or problems:
        findings = analyse(traces, _situations(outcomes, problems))
        return Verdict("failed", _failure_message(world_size, failed, problems, findings), raised)
    for status in ("skipped", "xfailed"):
        reasons = {o.rank: o.summary for o in outcomes if o.status == status}
        if reasons:
            return Verdict(status, _merge_reasons(world_size, reasons), raised)
    return Verdict("passed", warnings=raised)


def _merge_warnings(outcomes: list[RankOutcome]) -> tuple[WarningOnRanks, ...]:
    ranks_of: dict[RankWarning, list[int]] = {}
    for outcome in sorted(outcomes, key=lambda o: o.rank):
        for warning in outcome.warnings:
            ranks_of.setdefault(warning, []).append(outcome.rank)
    return tuple(WarningOnRanks(warning, tuple(ranks)) for warning, ranks in ranks_of.items())


def _situations(outcomes: list[RankOutcome], problems: list[RankProblem]) -> dict[int, RankSituation]:
    """Where each rank was when judged: what it reported, how it ended, or (if hung) its line of test code."""
    situations = {outcome.rank: RankSituation(False, ended=outcome.status) for outcome in outcomes}
    for problem in problems:
        if problem.running:
            location = innermost_test_frame(problem.stack or "", roots=[os.getcwd()])
            situations[problem.rank] = RankSituation(True, location=location)
        else:
            situations[problem.rank] = RankSituation(False, ended=problem.what)
    return situations


def _failure_message(
    world_size: int,
    failed: list[RankOutcome],
    problems: list[RankProblem],
    findings: CollectiveFindings | None = None,
) -> str:
    # First line: one clause per kind of trouble, so pytest's one-line summary already names the ranks.
    # Likeliest cause first: a rank that died, then ranks that failed, then ranks left waiting on them.
    clauses = _problem_clauses(world_size, [p for p in problems if not p.running])
    clauses += [f"rank {o.rank} of {world_size} failed: {o.summary}" for o in failed]
    clauses += _problem_clauses(world_size, [p for p in problems if p.running])
    sections = [
        (o.rank, f"---- rank {o.rank} of {world_size} failed ----\n{o.detail.rstrip()}") for o in failed
    ]
    for problem in problems:
        if problem.stack is None:
            continue
        body = problem.stack.rstrip() or "(no Python stack could be collected)"
        sections.append(
            (problem.rank, f"---- rank {problem.rank} of {world_size} {problem.what}; its stack ----\n{body}")
        )
        if problem.native_stack is not None:
            title = f"---- rank {problem.rank} of {world_size}: its native stack (py-spy dump --native) ----"
            sections.append((problem.rank, f"{title}\n{problem.native_stack.rstrip()}"))
    sections.sort(key=lambda section: section[0])  # stable: each rank's Python stack before its native one
    if any(problem.running and problem.native_stack is None for problem in problems):
        sections.append((world_size, NATIVE_STACKS_NEED_PY_SPY))
    head = "; ".join(clauses)
    if findings is not None:
        # The verdict first: pytest's one-line summary shows the first line, and it says who went astray.
        verdict = list(findings.verdict)
        timed_out = next((p.what for p in problems if p.running and p.what.startswith(TIMED_OUT)), None)
        if verdict and timed_out:
            # A hang's one line says it timed out, and which setting set the time, before who went astray.
            verdict[0] = f"{timed_out}: {verdict[0]}"
        head = "\n".join([*verdict, head])
        if findings.table:
            sections.insert(0, (-1, findings.table))
    return "\n\n".join([head, *(text for _, text in sections)])


# How a rank stopped at the per-test timeout is described (rank_processes.py): "timed out after 30 s (...)".
TIMED_OUT = "timed out after "


def _problem_clauses(world_size: int, problems: list[RankProblem]) -> list[str]:
    by_what: dict[str, list[int]] = {}
    for problem in problems:
        by_what.setdefault(problem.what, []).append(problem.rank)
    return [f"{describe_ranks(ranks)} of {world_size} {what}" for what, ranks in by_what.items()]


def _merge_reasons(world_size: int, reasons: dict[int, str]) -> str:
    distinct = set(reasons.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"rank {rank} of {world_size}: {reason}" for rank, reason in sorted(reasons.items()))
