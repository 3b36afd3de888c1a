"""The implementation the communicator fixture runs (`--dist-communicator`): its platforms and its gaps.

Runs in the pytest process (collection, reports) and on the ranks (`create_on_rank`). The adapter named by
`--dist-communicator` (see harness/adapters) decides the platforms: more than one (vLLM: cpu, xpu and cuda
logic on gloo) parametrizes every test that uses the communicator, with ids such as `[xpu_emulated]`. Its
known gaps become strict xfails; tests that are not about the communicator's public API are skipped for any
target but comm-harness's own package, whose tests they are.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.adapters.base import CommunicatorAdapter, KnownGap, TargetPlatform, strip_platform_id
from harness.adapters.gap_file import unmatched
from harness.adapters.registry import (
    DEFAULT_COMMUNICATOR,
    BrokenAdapterError,
    UnknownCommunicatorError,
    load_adapter,
)
from harness.config.model import KNOWN_GAP_REASON

if TYPE_CHECKING:
    from harness.common.dist_env import DistEnv
    from harness.pytest_plugin.settings import DistSettings

# The fixture that carries a test's platform; parametrized when the target has several.
PLATFORM_FIXTURE = "communicator_platform"
# Fixtures that give a test the target's communicators: a test that uses one is part of the conformance suite.
CONFORMANCE_FIXTURES = ("communicator", "communicator_factory")
# Marker of a test that reads comm-harness internals, not the public API: it runs for comm-harness only.
INTERNALS_MARKER = "comm_harness_internals"
_GAP = pytest.StashKey[KnownGap]()


@dataclass(frozen=True)
class Target:
    """The implementation a session runs the suite against, and the platforms it runs on this device."""

    name: str
    adapter: CommunicatorAdapter
    platforms: tuple[TargetPlatform, ...]

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_COMMUNICATOR

    def describe(self) -> str:
        """One line for the pytest header."""
        platforms = ", ".join(platform.id for platform in self.platforms)
        return f"comm-harness: communicator under test {self.name} ({self.adapter.description}); {platforms}"


@functools.cache
def _adapter(name: str) -> CommunicatorAdapter:
    return load_adapter(name)


def select_target(name: str, device: str) -> Target:
    """The target for `--dist-communicator NAME` on `device`; a usage error says what is wrong."""
    try:
        adapter = _adapter(name)
    except (UnknownCommunicatorError, BrokenAdapterError) as error:
        raise pytest.UsageError(f"--dist-communicator {name}: {error}") from None
    platforms = adapter.platforms(device)
    if not platforms:
        raise pytest.UsageError(
            f"--dist-communicator {name}: the adapter has no platform for --dist-device {device} "
            f"({adapter.description}); run it with a device it supports"
        )
    return Target(name, adapter, platforms)


def platform_of(item: pytest.Item, platforms: tuple[TargetPlatform, ...]) -> TargetPlatform:
    """The platform a collected test runs: its parameter, or the target's only platform."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and PLATFORM_FIXTURE in callspec.params:
        return callspec.params[PLATFORM_FIXTURE]
    return platforms[0]


class TargetHooks:
    """The pytest hooks of target selection, registered by the plugin for the session."""

    def __init__(self, target: Target, world_size: int) -> None:
        self.target = target
        self.world_size = world_size
        # Every conformance test collected, deselected ones too: (name without platform id, platform id).
        self.collected: set[tuple[str, str]] = set()

    def pytest_report_header(self) -> str:
        return self.target.describe()

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # trylast: after the test's own parametrize marks, so the platform is the last part of the id.
        platforms = self.target.platforms
        if len(platforms) > 1 and _uses_any(metafunc.fixturenames, CONFORMANCE_FIXTURES):
            metafunc.parametrize(
                PLATFORM_FIXTURE, platforms, ids=[platform.id for platform in platforms], indirect=True
            )

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if any(_uses_any(getattr(item, "fixturenames", ()), CONFORMANCE_FIXTURES) for item in items):
            try:
                self.target.adapter.preload()
            except Exception as error:  # an adapter's import failure is the user's set-up, not a crash
                raise pytest.UsageError(f"--dist-communicator {self.target.name}: {error}") from None
        for item in items:
            self._mark(item)

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        # A holding gap is the target behaving as recorded: "known gap" on the terminal, not "xfailed".
        reason = getattr(report, "wasxfail", None)
        if report.when == "call" and report.skipped and str(reason or "").startswith(KNOWN_GAP_REASON):
            return "known gap", "x", "KNOWN GAP"
        return None

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            self._note_collected(item)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Only when whole directories were collected: a run of one file or one test leaves most gaps unused.
        if not self.target.adapter.known_gaps or not _collected_whole_directories(session.config):
            return
        never = unmatched(self.target.adapter.known_gaps, self.collected)
        if never:
            lines = [f"{gap.origin or 'gap'}: {gap.test!r} on {', '.join(gap.platforms)}" for gap in never]
            raise pytest.UsageError(
                f"--dist-communicator {self.target.name}: {len(never)} known gap(s) never match a collected "
                "test (renamed or removed tests?); correct the pattern or remove the gap:\n  "
                + "\n  ".join(lines)
            )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any]:
        outcome = yield
        report = outcome.get_result()
        gap = item.stash.get(_GAP, None)
        if gap is None or call.when != "call" or not getattr(report, "wasxfail", None) or not report.skipped:
            return
        text = call.excinfo.exconly() if call.excinfo is not None else ""
        if not gap.explains(text):
            # Still failing, but not as recorded: the gap changed, and someone must look.
            report.outcome = "failed"
            del report.wasxfail
            report.longrepr = (
                f"known gap of {self.target.name} recorded a failure matching {gap.match!r} "
                f"({gap.reason}); this failure differs:\n{text}"
            )

    def _mark(self, item: pytest.Item) -> None:
        if not self.target.is_default:
            reason = _not_for_other_targets(item)
            if reason:
                item.add_marker(
                    pytest.mark.skip(reason=f"{reason}; not run for --dist-communicator {self.target.name}")
                )
                return
        if not self._note_collected(item):
            return
        platform = platform_of(item, self.target.platforms)
        test_name = strip_platform_id(item.name, platform.id)
        for gap in self.target.adapter.known_gaps:
            if gap.applies_to(test_name, platform.id, self.world_size):
                item.stash[_GAP] = gap
                item.add_marker(
                    pytest.mark.xfail(
                        strict=True,
                        reason=f"{KNOWN_GAP_REASON}{self.target.name} on {platform.id}: {gap.reason}",
                    )
                )
                return

    def _note_collected(self, item: pytest.Item) -> bool:
        """Remember a conformance test's name and platform for the never-matching check; False for others."""
        if not _uses_any(getattr(item, "fixturenames", ()), CONFORMANCE_FIXTURES):
            return False
        platform = platform_of(item, self.target.platforms)
        self.collected.add((strip_platform_id(item.name, platform.id), platform.id))
        return True


def _collected_whole_directories(config: pytest.Config) -> bool:
    """Whether every path the session was given is a directory (no file, no test id): a whole suite."""
    paths = [Path(config.invocation_params.dir, arg.split("::")[0]) for arg in config.args]
    return bool(paths) and all(path.is_dir() for path in paths)


def _not_for_other_targets(item: pytest.Item) -> str:
    """Why a test is comm-harness's own and not the suite's ("" when it is part of the suite)."""
    marker = item.get_closest_marker(INTERNALS_MARKER)
    if marker is not None:
        why = marker.args[0] if marker.args else "it reads comm-harness internals"
        return f"tests comm-harness's own communicators: {why}"
    if not _uses_any(getattr(item, "fixturenames", ()), CONFORMANCE_FIXTURES):
        return "tests comm-harness's own package (it does not use the communicator fixture)"
    return ""


def _uses_any(fixturenames: Any, names: tuple[str, ...]) -> bool:
    return any(name in fixturenames for name in names)


def requested_platform(request: pytest.FixtureRequest, target: Target) -> TargetPlatform:
    """The `communicator_platform` fixture's value, recorded as JUnit properties: `communicator_platform` on
    every test of the suite (what conformance tables read), `emulated` on an emulated one."""
    platform = getattr(request, "param", None) or target.platforms[0]
    # In the pytest process: properties reach the JUnit XML, so emulation is never read as hardware.
    request.node.user_properties.append((PLATFORM_FIXTURE, platform.id))
    if platform.emulation_label:
        request.node.user_properties.append(("emulated", platform.emulation_label))
    return platform


def create_on_rank(item: pytest.Item, env: DistEnv, settings: DistSettings) -> Any:
    """On a rank: the target's communicator for this test's platform, with the run's all2all backend."""
    adapter = _adapter(settings.communicator)
    return adapter.create(
        env, platform_of(item, adapter.platforms(settings.device)), settings.all2all_backend
    )


def factory_on_rank(item: pytest.Item, env: DistEnv, settings: DistSettings) -> Callable[..., Any]:
    """On a rank: `communicator_factory(all2all_backend=..., group=...)`, a new communicator of this test's
    platform, over the world or over `group` (from `dist.new_group(ranks)`, on a member of it)."""
    adapter = _adapter(settings.communicator)
    platform = platform_of(item, adapter.platforms(settings.device))

    def make(all2all_backend: str = settings.all2all_backend, group: Any = None) -> Any:
        if group is None:
            return adapter.create(env, platform, all2all_backend)
        if "group" not in inspect.signature(adapter.create).parameters:
            pytest.skip(
                f"the {settings.communicator} adapter builds no communicator over a sub-group "
                "(its create() takes no `group`)"
            )
        return adapter.create(env, platform, all2all_backend, group=group)

    return make
