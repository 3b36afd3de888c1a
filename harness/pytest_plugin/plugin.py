"""The pytest side of the plugin: options, markers, fixtures, and the hooks that send a test to its ranks.

Runs in the pytest process (and, under `--forked` in fork mode, in pytest-forked's child of it). A test is
distributed when it asks for `dist_env`, directly or through `communicator`: its fixtures are resolved here
as usual, then `pytest_pyfunc_call` runs its body on the ranks (`launcher.py` or `workers.py`).
"""

from __future__ import annotations

import importlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.adapters.base import TargetPlatform
from harness.common.dist_env import PendingCommunicator, PendingDistEnv
from harness.pytest_plugin import options
from harness.pytest_plugin.attempts import AttemptPolicy, AttemptReports, keep_attempts
from harness.pytest_plugin.forked.reports import CrashLinesFromForkedChildren
from harness.pytest_plugin.launcher import run_in_fresh_ranks
from harness.pytest_plugin.nodes import node_options, serve_node_store
from harness.pytest_plugin.outcomes import Verdict
from harness.pytest_plugin.progress_writer import ProgressWriter, interrupted_event
from harness.pytest_plugin.rank_processes import RanksInterrupted
from harness.pytest_plugin.rank_warnings import WarningsFromForkedChildren, reissue_for_item, session_filters
from harness.pytest_plugin.reuse.fresh_ranks import FreshRankTally
from harness.pytest_plugin.reuse.reuse_check import UNSEEN_BY_REUSE_MODE, compare_modes
from harness.pytest_plugin.reuse.workers import WorkerPool
from harness.pytest_plugin.settings import DistSettings, resolve_reuse
from harness.pytest_plugin.targets import INTERNALS_MARKER, TargetHooks, requested_platform, select_target
from harness.pytest_plugin.uncaptured_output import keep_uncaptured_output

# Modules that rank bodies commonly import lazily. A fresh fork re-imports whatever the pytest process has
# not: torch.testing.assert_close's first call imports torch.distributed.tensor, 2.3 s on every rank of every
# test. Imported once here, before any fork, every rank inherits them. None of them touches a device.
# getpass: tmp_path imports it at its first use; imported later, reuse mode would fork its workers again.
PRELOADED_FOR_RANKS = ("torch.distributed.tensor", "communicators", "getpass")
# How long pytest waits for its forked child to report an interrupted test's ranks (their stacks take up to
# 3 s); the harness kills the cell 20 s after its Ctrl-C.
FORKED_CHILD_INTERRUPT_WAIT_S = 8.0


@dataclass
class PluginState:
    """What the plugin keeps for one pytest session."""

    settings: DistSettings
    pytest_pid: int
    # --forked with reuse on: distributed tests stay in this process (next to the workers), the rest fork.
    fork_non_distributed: bool = False
    pool: WorkerPool | None = field(default=None, repr=False)
    # pytest's warning filters outside any test, for reuse workers (set when the session starts).
    warning_filters: list[Any] = field(default_factory=list, repr=False)
    # Reuse mode: the tests sent to fresh ranks and why, for the summary and the progress file.
    tally: FreshRankTally | None = field(default=None, repr=False)
    # On node 0 of several: the TCPStore all nodes' ranks join through, served for the whole session.
    node_store: Any = field(default=None, repr=False)
    attempts: AttemptPolicy = field(default_factory=AttemptPolicy)

    def run(self, item: pytest.Function) -> Verdict:
        """Run a distributed test's body on the ranks: the reuse workers when possible, else fresh ranks."""
        if self.settings.reuse:
            assert self.tally is not None
            kind, why_not = self._why_not_workers(item)
            if not kind:
                payload, kind, why_not = self.workers().payload(item)
                if payload is not None:
                    self.tally.ran_on_workers()
                    if self.settings.check_reuse:
                        fresh = run_in_fresh_ranks(item, self.settings, self.pytest_pid)
                        return compare_modes(fresh, self.workers().run(item, payload))
                    return self.workers().run(item, payload)
            item.add_report_section(
                "call", "comm-harness", f"ran in fork mode, not on the reuse workers: {why_not}"
            )
            self.tally.ran_on_fresh_ranks(item.nodeid, kind, why_not)
        return run_in_fresh_ranks(item, self.settings, self.pytest_pid)

    def run_attempts(self, item: pytest.Function) -> Verdict:
        """`run`, then again on fresh ranks as --dist-retries / --dist-repeat say (attempts.py)."""
        verdict, attempts = self.attempts.run(
            lambda: self.run(item), lambda: run_in_fresh_ranks(item, self.settings, self.pytest_pid)
        )
        keep_attempts(item, attempts)
        return verdict

    def prepare_workers(self, item: pytest.Function) -> None:
        """Before a distributed test's fixtures run, in reuse mode: have workers that match pytest's state."""
        if self.settings.reuse and not self._why_not_workers(item)[0] and not item.get_closest_marker("skip"):
            self.workers().prepare(item)

    def workers(self) -> WorkerPool:
        if self.pool is None:
            assert self.tally is not None
            self.pool = WorkerPool(self.settings, self.warning_filters, self.tally)
        return self.pool

    def _why_not_workers(self, item: pytest.Function) -> tuple[str, str]:
        """The kind of reason and the reason this test cannot use the workers, whatever its fixtures did."""
        if item.get_closest_marker("dist_fork"):
            return "marked dist_fork", "the test is marked dist_fork"
        if os.getpid() != self.pytest_pid:
            return "marked forked", "the test runs in a forked child of pytest (marked forked)"
        return "", ""


_STATE = pytest.StashKey[PluginState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.declare_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "world_size(*sizes): the world sizes a distributed test supports; others skip it."
    )
    config.addinivalue_line(
        "markers", "dist_fork: run this distributed test on fresh forked ranks even in reuse mode."
    )
    config.addinivalue_line(
        "markers",
        f"{INTERNALS_MARKER}(why): the test reads comm-harness internals; other --dist-communicator "
        "targets skip it.",
    )
    device = config.getoption(options.DEVICE.dest)
    world_size = config.getoption(options.WORLD_SIZE.dest)
    node_rank = config.getoption(options.NODE_RANK.dest)
    try:
        nodes = node_options(config.getoption(options.NODES.dest), node_rank, world_size, dict(os.environ))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    state = PluginState(
        settings=DistSettings(
            device=device,
            world_size=world_size,
            timeout_s=config.getoption(options.TIMEOUT.dest),
            # One node of several: fork mode, so that every node's ranks meet per test under one store key;
            # reuse workers restart on failures only some nodes see.
            reuse=resolve_reuse(config.getoption(options.REUSE.dest), device) and node_rank is None,
            check_reuse=config.getoption(options.REUSE.dest) == "check" and node_rank is None,
            all2all_backend=config.getoption(options.ALL2ALL_BACKEND.dest),
            trace_collectives=config.getoption(options.TRACE_COLLECTIVES.dest) == "on",
            check_collectives=config.getoption(options.CHECK_COLLECTIVES.dest),
            communicator=config.getoption(options.COMMUNICATOR.dest),
            **nodes,
        ),
        pytest_pid=os.getpid(),
        attempts=AttemptPolicy(config.getoption(options.RETRIES.dest), config.getoption(options.REPEAT.dest)),
    )
    config.pluginmanager.register(AttemptReports(config, state.attempts.repeat), "comm_harness_attempts")
    target = select_target(state.settings.communicator, device)
    config.pluginmanager.register(TargetHooks(target, state.settings.world_size), "comm_harness_target")
    state.node_store = serve_node_store(state.settings)
    progress_path = config.getoption(options.PROGRESS.dest)
    progress = ProgressWriter(progress_path) if progress_path else None
    if progress is not None:
        config.pluginmanager.register(progress, "comm_harness_progress")
    if state.settings.reuse:
        state.tally = FreshRankTally(progress)
    config.pluginmanager.register(WarningsFromForkedChildren(config), "comm_harness_forked_warnings")
    config.pluginmanager.register(CrashLinesFromForkedChildren(), "comm_harness_forked_crash_lines")
    keep_uncaptured_output(config)
    if state.settings.reuse and config.getoption("forked", default=False):
        # Reuse workers must be children of this process, which lives all session: so distributed tests
        # stay here, and only the others get pytest-forked's per-test fork (its marker, set at collection).
        config.option.forked = False
        state.fork_non_distributed = True
    config.stash[_STATE] = state


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[_STATE].settings.describe()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    world_size = state.settings.world_size
    if any(is_distributed(item) for item in items):
        _preload_for_ranks()
    for item in items:
        marker = item.get_closest_marker("world_size")
        if marker is not None:
            sizes = _marker_sizes(item, marker)
            if world_size not in sizes:
                supported = ", ".join(str(size) for size in sizes)
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"supports world sizes {supported}; this run has world size {world_size}"
                    )
                )
        if state.fork_non_distributed and not is_distributed(item):
            item.add_marker(pytest.mark.forked)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Now, not at configure: pytest's warnings plugin has set its session filters, and no test's are on top.
    session.config.stash[_STATE].warning_filters = session_filters()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture of the test is set up: reuse workers are forked from pytest's state outside tests.
    if isinstance(item, pytest.Function) and is_distributed(item):
        item.config.stash[_STATE].prepare_workers(item)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not is_distributed(pyfuncitem):
        return None
    state = pyfuncitem.config.stash[_STATE]
    try:
        verdict = state.run_attempts(pyfuncitem)
    except RanksInterrupted as interrupted:
        progress = pyfuncitem.config.pluginmanager.get_plugin("comm_harness_progress")
        if progress is not None:
            progress.write(interrupted_event(pyfuncitem.nodeid, interrupted), from_any_process=True)
        raise
    # Before the verdict: a failed test's warnings belong in the summary too.
    in_forked_child = os.getpid() != state.pytest_pid
    errors = reissue_for_item(pyfuncitem, verdict.warnings, state.settings.world_size, in_forked_child)
    if errors and verdict.status != "failed":
        pytest.fail("\n".join(errors), pytrace=False)
    verdict.raise_into_pytest()
    return True


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash[_STATE]
    if state.pool is not None and os.getpid() == state.pytest_pid:
        state.pool.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = terminalreporter.config.stash[_STATE]
    if state.tally is not None and state.tally.distributed_tests:
        state.tally.write_summary(terminalreporter)
        if not state.settings.check_reuse:
            terminalreporter.write_line(UNSEEN_BY_REUSE_MODE)


@pytest.fixture
def dist_env(request: pytest.FixtureRequest) -> PendingDistEnv:
    """This rank's DistEnv (rank, world_size, device, group, backend); asking for it makes a test distributed.

    In the pytest process it is a placeholder; each rank gets the real one.
    """
    return PendingDistEnv(request.node.nodeid)


@pytest.fixture
def communicator_platform(request: pytest.FixtureRequest) -> TargetPlatform:
    """The platform whose communicator logic this test runs (parametrized when the target has several)."""
    target = request.config.pluginmanager.get_plugin("comm_harness_target").target
    return requested_platform(request, target)


@pytest.fixture
def communicator_promises(request: pytest.FixtureRequest) -> frozenset[str]:
    """The optional promises the target makes (its adapter's `promises`, e.g. "all_reduce_in_place"): a test
    of such a promise checks it only where it is made; what every communicator must do is checked always."""
    target = request.config.pluginmanager.get_plugin("comm_harness_target").target
    return frozenset(getattr(target.adapter, "promises", ()))


@pytest.fixture
def communicator(
    dist_env: PendingDistEnv, communicator_platform: TargetPlatform, request: pytest.FixtureRequest
) -> PendingCommunicator:
    """The --dist-communicator target's communicator per rank (default `communicators.create_communicator(
    dist_env.device, all2all_backend=...)`), destroyed after."""
    return PendingCommunicator(request.node.nodeid)


@pytest.fixture
def communicator_factory(
    dist_env: PendingDistEnv, communicator_platform: TargetPlatform, request: pytest.FixtureRequest
) -> PendingCommunicator:
    """Per rank, `make(all2all_backend=NAME, group=None)`: a new communicator of the target and platform,
    over the world or over `group` (from `torch.distributed.new_group(ranks)`; call it on its members only).

    The body destroys what it makes (and the group it made).
    """
    return PendingCommunicator(request.node.nodeid)


def _preload_for_ranks() -> None:
    for module in PRELOADED_FOR_RANKS:
        try:
            importlib.import_module(module)
        except ImportError:
            # Optional: a rank that needs the module reports the ImportError itself.
            continue


def is_distributed(item: pytest.Item) -> bool:
    """A test is distributed when `dist_env` is among its fixtures (directly or through another fixture)."""
    return "dist_env" in getattr(item, "fixturenames", ())


def _marker_sizes(item: pytest.Item, marker: pytest.Mark) -> tuple[int, ...]:
    sizes = marker.args
    if not sizes or not all(type(size) is int and size > 0 for size in sizes):
        path, line, _ = item.location
        raise pytest.UsageError(
            f"{path}:{(line or 0) + 1}: {item.nodeid}: @pytest.mark.world_size takes positive integers, "
            f"e.g. world_size(2, 4); got world_size{sizes!r}"
        )
    return sizes


def pytest_keyboard_interrupt() -> None:
    """Ctrl-C reached pytest, which under --forked waits for pytest-forked's child running the test: pass it
    on, so that the child says which ranks were still in the test (`RanksInterrupted`) before pytest ends."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        if child.pid is not None:
            os.kill(child.pid, signal.SIGINT)
    give_up = time.monotonic() + FORKED_CHILD_INTERRUPT_WAIT_S
    for child in children:
        child.join(max(0.0, give_up - time.monotonic()))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End test processes a finished session left: after Ctrl-C, pytest-forked's child still runs the
    interrupted test, and Python joins multiprocessing children at exit, so pytest would wait for it.

    By now junit.xml holds the tests that finished; the interrupted one's ranks die with its process.
    """
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
