"""`--dist-progress FILE`, in the main pytest process: a JSON line per test start and per report, at once.

The one writer of the file; its events are harness/common/progress_events.py's. The harness's progress reader
(harness/running/executors/progress_reader.py) follows the file while the cell runs; the first event says how
many tests were collected, so the live view can show "12/40".
"""

from __future__ import annotations

import os
import time

import pytest

from harness.common.progress_events import (
    TEXT_CHARS,
    Collected,
    Interrupted,
    PluginEvent,
    Reported,
    Started,
    event_line,
)
from harness.config.model import KNOWN_GAP_REASON
from harness.pytest_plugin.desync.desync_verdict import innermost_test_frame
from harness.pytest_plugin.rank_processes import RanksInterrupted

MESSAGE_CHARS = 480
# A stack's innermost frames come first: its end (pytest's frames are cut already) is what a reader drops.
STACK_CHARS = TEXT_CHARS


def failure_message(report: pytest.TestReport) -> str:
    """The first line of what JUnit's failure message will say (pytest's junitxml takes the same text)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    line = next((line.strip() for line in text.splitlines() if line.strip()), report.outcome)
    return line[:MESSAGE_CHARS]


class ProgressWriter:
    """A pytest plugin object; pytest-forked rebuilds reports in the main process, so all events come here."""

    def __init__(self, path: str) -> None:
        try:
            self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115  closed at unconfigure
        except OSError as exc:
            raise pytest.UsageError(f"--dist-progress {path}: cannot append to it: {exc.strerror}") from None
        self._pid = os.getpid()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.write(Collected(len(session.items), time.time()))

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.write(Started(nodeid, time.time()))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        known_gap = report.skipped and str(getattr(report, "wasxfail", "")).startswith(KNOWN_GAP_REASON)
        self.write(
            Reported(
                report.nodeid,
                str(report.when),
                report.outcome,
                duration=report.duration,
                message=failure_message(report) if report.failed else None,
                known_gap=bool(known_gap),
            )
        )

    def pytest_unconfigure(self) -> None:
        self._file.close()

    def write(self, event: PluginEvent, *, from_any_process: bool = False) -> None:
        """One more line; other parts of the plugin write theirs here too (a test that ran on fresh ranks).

        Forks of pytest inherit this file; only the main process writes, or lines would repeat, unless
        `from_any_process`: an event that only the process running the ranks knows and writes once (under
        --forked, pytest-forked's child). Each line is flushed whole, so a fork inherits no buffered line.
        """
        if from_any_process or os.getpid() == self._pid:
            self._file.write(event_line(event) + "\n")
            self._file.flush()


def interrupted_event(nodeid: str, interrupted: RanksInterrupted) -> Interrupted:
    """The progress event of a test interrupted (Ctrl-C) while some of its ranks were still running."""
    stacks = [interrupted.stacks[rank] for rank in interrupted.running]
    return Interrupted(
        nodeid,
        interrupted.world_size,
        tuple(interrupted.running),
        tuple(interrupted.finished),
        locations=tuple(innermost_test_frame(stack, roots=[os.getcwd()]) or "" for stack in stacks),
        stacks=tuple(stack[-STACK_CHARS:] for stack in stacks),
    )
