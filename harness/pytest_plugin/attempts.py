"""Retries and repeats of a distributed test's body, each on fresh ranks, and the verdict over its attempts.

`--dist-retries N`: a distributed test whose ranks failed (a rank failed or errored, died, or outlived
--dist-timeout) runs again on fresh forked ranks, up to N more times; one that then passes is **flaky**.
`--dist-repeat N`: every distributed test runs N times on fresh ranks whatever the outcomes, for hunting a
flaky test; the terminal summary prints how often each failed and its distinct failures.

The attempts run inside the test's one call: its fixtures (in the pytest process) are set up once and the
ranks are new each time, as reuse mode already does for a test that cannot use its workers. Every failed
attempt's message (the rank verdict included) travels on the call report as plain tuples, which survive
pytest-forked's marshal, and becomes a Surefire-style `<flakyFailure>` (or `<rerunFailure>` when no attempt
passed) in pytest's junit.xml, where the harness counts it.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest
from _pytest.junitxml import xml_key  # where pytest keeps its junit.xml writer (LogXML)

from harness.common.untrusted_text import xml_text
from harness.pytest_plugin.outcomes import Verdict

# On the call report, when there was more than one attempt: ((number, status, message, seconds), ...).
ATTEMPTS_ATTRIBUTE = "comm_harness_attempts"
FLAKY = "flaky"
# Surefire's names: a failure of a test that passed later, and one of a test that never passed.
FLAKY_FAILURE = "flakyFailure"
RERUN_FAILURE = "rerunFailure"
_ATTEMPTS = pytest.StashKey[tuple[tuple[int, str, str, float], ...]]()


@dataclass(frozen=True)
class Attempt:
    """One run of a test's body on its ranks."""

    number: int
    verdict: Verdict
    seconds: float

    def as_tuple(self) -> tuple[int, str, str, float]:
        return (self.number, self.verdict.status, self.verdict.message, round(self.seconds, 3))


@dataclass
class AttemptPolicy:
    """How many times a distributed test's body runs: `retries` more after a failure, or `repeat` always."""

    retries: int = 0
    repeat: int = 1

    def run(
        self, first: Callable[[], Verdict], again: Callable[[], Verdict]
    ) -> tuple[Verdict, list[Attempt]]:
        """Run `first`, then `again` (fresh ranks) as the policy says; the test's verdict and its attempts."""
        attempts = [_timed(1, first)]
        while self._another(attempts):
            attempts.append(_timed(len(attempts) + 1, again))
        return verdict_of(attempts), attempts

    def _another(self, attempts: list[Attempt]) -> bool:
        if self.repeat > 1:
            return len(attempts) < self.repeat
        return attempts[-1].verdict.status == "failed" and len(attempts) <= self.retries


def _timed(number: int, run: Callable[[], Verdict]) -> Attempt:
    start = time.monotonic()
    verdict = run()
    return Attempt(number, verdict, time.monotonic() - start)


def verdict_of(attempts: list[Attempt]) -> Verdict:
    """Passed when the last attempt passed, even after failures (flaky, noted on the report); failed when
    every run attempt failed, its message the last failure's with the count; else the last attempt's.

    Under --dist-repeat a test that failed some attempts is flaky too, and one that failed every attempt
    failed."""
    failed = [a for a in attempts if a.verdict.status == "failed"]
    passed = [a for a in attempts if a.verdict.status == "passed"]
    last = attempts[-1].verdict
    if len(attempts) == 1 or not failed:
        return last
    if passed:
        return Verdict("passed", warnings=last.warnings)
    final = failed[-1].verdict
    return Verdict(
        "failed",
        f"failed all {len(attempts)} attempts (each retry on fresh ranks); the last: {final.message}",
        final.warnings,
    )


def keep_attempts(item: pytest.Item, attempts: list[Attempt]) -> None:
    """Note the attempts on the item, for the call report (only when there was more than one)."""
    if len(attempts) > 1:
        item.stash[_ATTEMPTS] = tuple(attempt.as_tuple() for attempt in attempts)


def is_flaky(report: Any) -> bool:
    """A passed call report of a test that failed on an earlier attempt (or on some repeats)."""
    attempts = getattr(report, ATTEMPTS_ATTRIBUTE, None)
    return bool(
        getattr(report, "when", None) == "call"
        and report.passed
        and attempts
        and any(status == "failed" for _, status, _, _ in attempts)
    )


class AttemptReports:
    """Hooks: the attempts onto the call report (in whichever process made it), the flaky status, the JUnit
    elements, and under --dist-repeat the per-test counts in the terminal summary."""

    def __init__(self, config: pytest.Config, repeat: int = 1) -> None:
        self.config = config
        self.repeat = repeat
        # nodeid -> (attempts, failures, distinct first lines of the failures in order)
        self.hunted: dict[str, tuple[int, int, list[str]]] = {}
        self.flaky: dict[str, str] = {}  # nodeid -> its attempts in one line

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
        report = yield
        attempts = item.stash.get(_ATTEMPTS, None)
        if call.when == "call" and attempts:
            setattr(report, ATTEMPTS_ATTRIBUTE, attempts)
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, Any] | None:
        if is_flaky(report):
            return FLAKY, "L", ("FLAKY", {"yellow": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        attempts = getattr(report, ATTEMPTS_ATTRIBUTE, None)
        if not attempts or report.when != "call":
            return
        if is_flaky(report):
            self.flaky[report.nodeid] = "; ".join(
                f"attempt {number} {status} ({seconds:g} s)" for number, status, _, seconds in attempts
            )
        if self.repeat > 1:
            failures = [message for _, status, message, _ in attempts if status == "failed"]
            distinct = list(dict.fromkeys((m.strip().splitlines() or ["(no message)"])[0] for m in failures))
            self.hunted[report.nodeid] = (len(attempts), len(failures), distinct)
        _add_junit_attempts(self.config, report, attempts)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.flaky and self.repeat <= 1:
            terminalreporter.section("comm-harness: flaky tests (failed, then passed on fresh ranks)")
            for nodeid, attempts in self.flaky.items():
                terminalreporter.write_line(f"FLAKY {nodeid}: {attempts}")
        if self.repeat <= 1 or not self.hunted:
            return
        terminalreporter.section(
            f"comm-harness repeat: each distributed test {self.repeat} times on fresh ranks"
        )
        for nodeid, (runs, failures, distinct) in self.hunted.items():
            terminalreporter.write_line(f"{failures}/{runs} failed  {nodeid}")
            for line in distinct:
                terminalreporter.write_line(f"    {line}")


def _add_junit_attempts(
    config: pytest.Config, report: pytest.TestReport, attempts: tuple[tuple[int, str, str, float], ...]
) -> None:
    """Each failed attempt as Surefire writes it: `<flakyFailure message type><stackTrace>` in a passed
    testcase; in a failed one `<rerunFailure>` for each but the last, which is the testcase's `<failure>`.
    pytest's own writer has no such element: it is added to the testcase pytest is writing (its LogXML's
    reporter of this report), when --junitxml is on."""
    log = config.stash.get(xml_key, None)
    if log is None:
        return
    tag = FLAKY_FAILURE if report.passed else RERUN_FAILURE
    failed = [attempt for attempt in attempts if attempt[1] == "failed"]
    if not report.passed:
        failed = failed[:-1]
    reporter = log.node_reporter(report)
    for number, _, message, seconds in failed:
        first = (message.strip().splitlines() or ["failed"])[0]
        element = ET.Element(
            tag,
            message=xml_text(first),
            type=xml_text(f"attempt {number} of {len(attempts)} ({seconds:g} s)"),
        )
        ET.SubElement(element, "stackTrace").text = xml_text(message)
        reporter.append(element)
