"""Reuse mode, in the pytest process: rank workers forked once, kept with their process group across tests.

The workers are forked before the first test's fixtures run, so they hold pytest's state outside any test.
Before each test the parent resolves its fixtures as usual and sends the workers the values the test function
takes, pickled, with what `carried_state.py` carries (environment, cwd, sys.path, RNG states); each worker
finds the test function among the items it inherited, takes on that state, runs the body and returns to its
own base state (`worker_state.py`). What cannot be carried (`uncarried.py`), values that do not pickle, and
`@pytest.mark.dist_fork` send a test to fresh ranks instead (`launcher.py`).
"""

from __future__ import annotations

import pickle
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from _pytest.monkeypatch import MonkeyPatch

from harness.pytest_plugin.launcher import EXIT_AFTER_REPORT_S, GRACE_AFTER_FAILURE_S
from harness.pytest_plugin.outcomes import Verdict, judge
from harness.pytest_plugin.rank import serve_tests
from harness.pytest_plugin.rank_processes import RankProcesses
from harness.pytest_plugin.reuse.carried_state import (
    ForkTimeState,
    FreshMonkeyPatch,
    capture,
    take_fork_time_state,
)
from harness.pytest_plugin.reuse.fresh_ranks import FreshRankTally
from harness.pytest_plugin.reuse.module_watch import ModuleWatch
from harness.pytest_plugin.reuse.process_switches import Switches
from harness.pytest_plugin.reuse.uncarried import (
    ClassWatch,
    environment_read_at_start,
    monkeypatched_beyond_environ,
    summarise,
)
from harness.pytest_plugin.settings import DistSettings

# Fixtures whose values in the pytest process are placeholders, replaced on every rank.
RANK_FIXTURES = ("dist_env", "communicator", "communicator_factory")


class WorkerPool:
    """`world_size` rank workers, forked before a test's fixtures run, again after any failure, and again
    when wider-scoped fixtures changed what the next test's namespaces hold."""

    def __init__(self, settings: DistSettings, warning_filters: list[Any], tally: FreshRankTally) -> None:
        self.settings = settings
        self._warning_filters = warning_filters  # the session's: workers outlive the test they are forked in
        self._tally = tally
        self._classes = ClassWatch()
        self._modules = ModuleWatch()
        self._switches: Switches | None = None
        self._switch_base: dict[str, Any] = {}
        # warnings.filters when each test's set-up began: pytest's for the test, before its fixtures'
        self._filters_before_fixtures: dict[str, list[Any]] = {}
        self._ranks: RankProcesses | None = None
        self._workdir: str | None = None
        self._fork_time: ForkTimeState | None = None
        self._closed_because: str | None = None  # why the last workers went: the next fork is a restart
        # Whether the last test's check found module attributes, modules or switches the workers lack: only
        # then does the next test compare before its fixtures run (the check after them finds all the rest).
        self._differed = False

    @property
    def pids(self) -> list[int]:
        return self._ranks.pids if self._ranks else []

    def prepare(self, item: pytest.Function) -> None:
        """Before the test's fixtures: fork workers if there are none, or again if the last test's check found
        differences that are still there (a module- or class-scoped fixture set a module attribute).

        Only then: the watch costs about as much before the fixtures as after them, and the check after them
        (`payload`) finds whatever differs, whenever it was changed. A change made outside any test's set-up
        (in a teardown, in a plain test's body) thus sends the next distributed test to fresh ranks, and the
        one after it gets new workers."""
        self._filters_before_fixtures = {item.nodeid: list(warnings.filters)}
        if self._ranks is not None:
            if not self._differed:
                return
            self._differed = False
            why = self._differs_from_workers(item)
            if not why:
                return
            self.close(why)
        self._start(item.session)

    def _differs_from_workers(self, item: pytest.Function) -> str:
        """Why pytest's process no longer matches the workers outside any test's fixtures ("" if it does)."""
        attributes, new_modules = self._modules.changes()
        if attributes or self._classes.changed_attributes(item):
            return "as fixtures of a wider scope changed module attributes"
        if new_modules:
            return "as modules were imported since the workers were forked"
        assert self._switches is not None
        if self._switches.changed(self._switch_base)[1]:
            return "as process switches that cannot be carried changed"
        return ""

    def payload(self, item: pytest.Function) -> tuple[bytes | None, str, str]:
        """The pickled fixture values and carried state for the workers; or None, the kind of reason and the
        reason why this test needs fresh ranks."""
        if self._ranks is None or self._fork_time is None:
            return None, "tests without workers", "no workers were forked before the test's fixtures ran"
        attributes, new_modules = self._modules.changes()
        changed = self._classes.changed_attributes(item) + attributes
        assert self._switches is not None
        switches, uncarriable = self._switches.changed(self._switch_base)
        self._differed = bool(changed or new_modules or uncarriable)
        if changed:
            reason = summarise("fixtures changed module attributes the workers do not have", changed)
            return None, "module attributes set by fixtures", reason
        if new_modules:
            reason = summarise("fixtures imported modules the workers do not have", new_modules)
            return None, "modules imported by fixtures", reason
        if uncarriable:
            reason = summarise("fixtures changed process switches that cannot be carried", uncarriable)
            return None, "process switches set by fixtures", reason
        patched = monkeypatched_beyond_environ(item)
        if patched:
            return None, "monkeypatched attributes", summarise("the test's monkeypatch changed", patched)
        carried = capture(
            self._fork_time,
            self.settings.device,
            item.instance,
            switches,
            self._filters_before_fixtures.get(item.nodeid),
        )
        read_at_start = environment_read_at_start([*carried.environ_set, *carried.environ_unset])
        if read_at_start:
            reason = summarise(
                "fixtures changed variables read when a process group or device starts", read_at_start
            )
            return None, "environment read at start-up", reason
        if carried.accelerator_seeds is None:
            reason = f"torch's queued {self.settings.device} seeding could not be read to be replayed"
            return None, "unreadable accelerator seeding", reason
        argnames = item._fixtureinfo.argnames
        values = {
            name: FreshMonkeyPatch() if isinstance(item.funcargs[name], MonkeyPatch) else item.funcargs[name]
            for name in argnames
            if name not in RANK_FIXTURES
        }
        try:
            return pickle.dumps((values, carried)), "", ""
        except Exception:  # pickling raises many types: PicklingError, TypeError, AttributeError
            return None, "fixture values that cannot be pickled", _unpicklable(values, carried)

    def run(self, item: pytest.Function, payload: bytes) -> Verdict:
        """Run one test on the workers; a failure, crash or timeout closes them: the next test forks anew."""
        assert self._ranks is not None, "payload() said the workers are there"
        try:
            deadline = time.monotonic() + self.settings.timeout_s
            self._ranks.send_all((item.nodeid, payload))
            outcomes, problems = self._ranks.collect(
                deadline, self.settings.timeout_s, min(GRACE_AFTER_FAILURE_S, self.settings.timeout_s)
            )
            traces = self._ranks.traces()
        except BaseException:
            self.close("after an interrupted test")
            raise
        verdict = judge(self.settings.world_size, outcomes, problems, traces)
        if verdict.status == "failed":
            # A failed test may leave collectives half done: the next test gets a fresh group.
            self.close("after a failed test")
        return verdict

    def close(self, because: str = "at the end of the session") -> None:
        """Ask the workers to leave their group and exit; kill those that do not."""
        if self._ranks is not None:
            self._ranks.send_all(None)
            self._ranks.wait_for_exit(EXIT_AFTER_REPORT_S)
            self._ranks = None
            self._closed_because = because
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _start(self, session: pytest.Session) -> None:
        import torch.distributed  # noqa: F401  imported once here, not once in every worker

        if self._closed_because is not None:
            self._tally.restarted(self._closed_because)
        self._differed = False
        _as_hypothesis_sets_it_for_each_test(session.config)
        items = {item.nodeid: item for item in session.items if isinstance(item, pytest.Function)}
        fork_time = take_fork_time_state(self.settings.device)
        self._classes.take_base(item for item in items.values() if "dist_env" in item.fixturenames)
        self._switches = Switches()  # first: building the probes may import what they read
        self._switch_base = self._switches.read()
        self._modules.take_base()
        self._fork_time = fork_time
        self._workdir = tempfile.mkdtemp(prefix="comm-harness-workers-")
        store_path = str(Path(self._workdir) / "store")
        self._ranks = RankProcesses(self.settings.world_size, Path(self._workdir), with_requests=True)
        self._ranks.start(
            lambda rank, results, requests: serve_tests(
                items, self.settings, rank, store_path, results, requests, self._warning_filters, fork_time
            )
        )


def _as_hypothesis_sets_it_for_each_test(config: pytest.Config) -> None:
    """hypothesis's pytest plugin sets `hypothesis.core.running_under_pytest` (a failure message's wording) in
    every test's call phase, after its fixtures: fresh ranks, forked then, see it set. So must the workers,
    forked before the first test's call; and the module watch then sees no rebinding at the first test."""
    core = sys.modules.get("hypothesis.core")
    if core is not None and config.pluginmanager.has_plugin("hypothesispytest"):
        core.running_under_pytest = True


def _unpicklable(values: dict[str, Any], carried: Any) -> str:
    unpicklable = []
    named = {
        **values,
        "self (the test's instance attributes)": carried.instance_attributes,
        **{f"process switch {name}": value for name, value in carried.switches.items()},
        "warnings.filters": carried.warning_filters,
    }
    for name, value in named.items():
        try:
            pickle.dumps(value)
        except Exception as exc:
            unpicklable.append(f"{name} ({type(exc).__name__}: {exc})")
    return "fixture values that cannot be pickled: " + ", ".join(unpicklable)
