"""What an implementation under test gives the conformance suite: its platforms, communicators and gaps.

The suite (tests/communicators) is written against one public API, the one `communicators` has: all_reduce,
all_gather, all_gatherv, reduce_scatter, reduce_scatterv, gather, broadcast, send/recv, dispatch/combine
(sizes passed explicitly), `all2all_backend`, `all2all_manager`, destroy. An adapter makes an engine's own
communicators speak it, without changing what they do, and records where they are known to differ.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from harness.common.dist_env import DistEnv


@dataclass(frozen=True)
class TargetPlatform:
    """A platform whose communicator logic a run exercises: natively, or emulated on the run's device."""

    name: str  # "cpu", "cuda", "xpu": the platform whose code runs
    emulated_on: str | None = None  # the device it runs on when emulated ("cpu": over gloo)

    @property
    def id(self) -> str:
        """The test-id suffix: `cpu`, `xpu_emulated`; an emulated test's id ends in `_emulated`."""
        return f"{self.name}_emulated" if self.emulated_on else self.name

    @property
    def emulation_label(self) -> str | None:
        """The JUnit property `emulated=` of an emulated test, e.g. `xpu-on-gloo` (None when native)."""
        if self.emulated_on is None:
            return None
        return f"{self.name}-on-gloo" if self.emulated_on == "cpu" else f"{self.name}-on-{self.emulated_on}"


def strip_platform_id(test_name: str, platform_id: str) -> str:
    """`test_x[equal-xpu_emulated]` -> `test_x[equal]`, `test_x[cpu]` -> `test_x`: the name gaps match."""
    name = re.sub(rf"-{re.escape(platform_id)}\]$", "]", test_name)
    return re.sub(rf"\[{re.escape(platform_id)}\]$", "", name)


@dataclass(frozen=True)
class KnownGap:
    """A recorded difference between the target and the suite: the test fails there, for this reason.

    The plugin turns it into a strict xfail, so a cell passes while the target behaves as recorded and fails
    the day it is fixed (XPASS) or fails differently (the failure no longer matches `match`).
    """

    test: str  # fnmatch pattern on the test's name without the platform id, e.g. "test_gather_*"
    platforms: tuple[str, ...]  # TargetPlatform ids: "cpu", "xpu_emulated", ...
    reason: str  # what the gap is; names the engine's issue where there is one
    match: str = ""  # regular expression the failure's text must contain ("" = any failure)
    world_sizes: tuple[int, ...] = ()  # () = every world size
    defect: str = ""  # whose defect: the implementation's name, or "torch" (seen on plain torch.distributed)
    source: str = ""  # where it is, e.g. "vllm/distributed/device_communicators/xpu_communicator.py:61"
    # Where the gap is recorded, e.g. "known-gaps.yaml:154: versions.0.19.1 gap 7" (for error messages).
    origin: str = field(default="", compare=False)

    def applies_to(self, test_name: str, platform_id: str, world_size: int) -> bool:
        """Whether this gap covers `test_name` (platform id removed) on `platform_id` at `world_size`."""
        return (
            platform_id in self.platforms
            and (not self.world_sizes or world_size in self.world_sizes)
            and fnmatch.fnmatchcase(test_name, self.test)
        )

    def explains(self, failure_text: str) -> bool:
        """Whether a failure's text is the one recorded (always, when no `match` was recorded)."""
        return not self.match or re.search(self.match, failure_text) is not None


# all_reduce_in_place: all_reduce of a contiguous tensor sums into it and returns it (docs/qualifying.md);
# vLLM's GroupCoordinator documents the opposite ("we always make the all-reduce operation out-of-place").
OPTIONAL_PROMISES = frozenset({"all_reduce_in_place"})


@runtime_checkable
class CommunicatorAdapter(Protocol):
    """An implementation the conformance suite can run against, found by name (see `registry.py`)."""

    name: str
    description: str
    known_gaps: tuple[KnownGap, ...]
    # Optional, not part of the protocol's checked members (an engine's adapter written before them still
    # loads):
    # - `promises`, the optional promises the implementation makes beyond what every communicator must do
    #   (correct results, no hang, clear errors), named in OPTIONAL_PROMISES. A test of one checks it only
    #   where it is made; none when absent.
    # - `backend_names()`, the all2all backend names its communicators accept, answered without importing
    #   the engine (the matrix loader asks it); None, or no such method: it cannot say, nothing is checked.

    def platforms(self, device: str) -> tuple[TargetPlatform, ...]:
        """The platforms whose logic runs on `device`; more than one parametrizes the suite over them."""
        ...

    def preload(self) -> None:
        """Import, in the pytest process before any rank forks, what every rank would import (no device)."""
        ...

    def create(self, env: DistEnv, platform: TargetPlatform, all2all_backend: str, group: Any = None) -> Any:
        """On a rank: a communicator with the suite's API, running `platform`'s logic, over `group` (a
        torch.distributed group made by `dist.new_group(ranks)`, of which this rank is a member) or, when
        None, over `env.group` (the world). Its ranks, sizes, `src` and `dst` are the group's."""
        ...

    def version(self) -> str | None:
        """The implementation's version, for reports (None when it is not installed)."""
        ...


def all2all_backend_names(adapter: CommunicatorAdapter) -> tuple[str, ...] | None:
    """The all2all backend names `adapter`'s implementation accepts, or None when it does not say."""
    backend_names = getattr(adapter, "backend_names", None)
    names = backend_names() if backend_names is not None else None
    return tuple(names) if names is not None else None
