"""A failure's one-line cause, carried across pytest-forked as it is without `--forked`.

pytest-forked sends its child's reports to pytest with the failure flattened into one string, so pytest's
JUnit writer, its `-ra` summary and the harness's excerpt see the traceback's first line ("self = <...>")
where, without `--forked`, they see the exception ("RuntimeError: Process 0 exited with error code 10 ...").
The child keeps that crash line on the report (plain strings survive pytest-forked's marshal) and pytest
puts it back before anything else reads the report.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr
from _pytest._io import TerminalWriter

_REPORT_ATTRIBUTE = "comm_harness_crash"


class FlattenedFailure(TerminalRepr):
    """A failure pytest-forked turned into text, with its crash location and message restored."""

    def __init__(self, text: str, reprcrash: ReprFileLocation) -> None:
        self.text = text
        self.reprcrash = reprcrash

    def __str__(self) -> str:
        return self.text

    def toterminal(self, tw: TerminalWriter) -> None:
        for line in self.text.splitlines():
            tw.line(line)


class CrashLinesFromForkedChildren:
    """Hooks for both sides of pytest-forked: note the crash on the child's report, restore it in pytest."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
        report = yield
        crash = getattr(report.longrepr, "reprcrash", None)
        if report.failed and crash is not None:
            setattr(report, _REPORT_ATTRIBUTE, (str(crash.path), int(crash.lineno), str(crash.message)))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Before the JUnit writer and the terminal reporter: only a flattened report lacks its crash line.
        crash = getattr(report, _REPORT_ATTRIBUTE, None)
        if crash is not None and isinstance(report.longrepr, str):
            path, lineno, message = crash
            report.longrepr = FlattenedFailure(report.longrepr, ReprFileLocation(path, lineno, message))
