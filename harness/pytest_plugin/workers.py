"""Reuse mode, in the pytest process: rank workers forked once, kept with their process group across tests.

Fixtures reach the workers by value: the parent resolves them as usual, pickles the values the test function
takes, and sends them with the test's node id; the worker, a fork of pytest made after collection, finds the
test function among the items it inherited. Side effects of fixtures on the pytest process (monkeypatch,
environment, module globals) are not seen by workers forked earlier: the plugin runs a test in fork mode
when its values do not pickle, and `@pytest.mark.dist_fork` forces it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from harness.pytest_plugin.launcher import EXIT_AFTER_REPORT_S, GRACE_AFTER_FAILURE_S
from harness.pytest_plugin.outcomes import Verdict, judge
from harness.pytest_plugin.rank import serve_tests
from harness.pytest_plugin.rank_processes import RankProcesses
from harness.pytest_plugin.settings import DistSettings


class WorkerPool:
    """`world_size` rank workers, started at the first test that needs them and after any failure."""

    def __init__(self, settings: DistSettings, warning_filters: list[Any]) -> None:
        self.settings = settings
        self._warning_filters = warning_filters  # the session's: workers outlive the test they are forked in
        self._ranks: RankProcesses | None = None
        self._workdir: str | None = None

    @property
    def pids(self) -> list[int]:
        return self._ranks.pids if self._ranks else []

    def run(self, item: pytest.Function, funcargs_blob: bytes) -> Verdict:
        """Run one test on the workers; any failure, crash or timeout restarts them before the next test."""
        try:
            ranks = self._ranks or self._start(item.session.items)
            deadline = time.monotonic() + self.settings.timeout_s
            ranks.send_all((item.nodeid, funcargs_blob))
            outcomes, problems = ranks.collect(
                deadline, self.settings.timeout_s, min(GRACE_AFTER_FAILURE_S, self.settings.timeout_s)
            )
            traces = ranks.traces()
        except BaseException:
            self.close()
            raise
        verdict = judge(self.settings.world_size, outcomes, problems, traces)
        if verdict.status == "failed":
            # A failed test may leave collectives half done: the next test gets a fresh group.
            self.close()
        return verdict

    def close(self) -> None:
        """Ask the workers to leave their group and exit; kill those that do not."""
        if self._ranks is not None:
            self._ranks.send_all(None)
            self._ranks.wait_for_exit(EXIT_AFTER_REPORT_S)
            self._ranks = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _start(self, session_items: list[pytest.Item]) -> RankProcesses:
        import torch.distributed  # noqa: F401  imported once here, not once in every worker

        items = {item.nodeid: item for item in session_items if isinstance(item, pytest.Function)}
        self._workdir = tempfile.mkdtemp(prefix="comm-harness-workers-")
        store_path = str(Path(self._workdir) / "store")
        self._ranks = RankProcesses(self.settings.world_size, Path(self._workdir), with_requests=True)
        self._ranks.start(
            lambda rank, results, requests: serve_tests(
                items, self.settings, rank, store_path, results, requests, self._warning_filters
            )
        )
        return self._ranks
