"""In the pytest process: what a test's fixtures changed that reuse workers cannot be given by value.

Fork mode's ranks inherit all of pytest's memory; reuse workers were forked earlier, and `carried_state.py`
gives them only the environment, working directory, `sys.path`, RNG states and torch's switches. So before a
test runs on the workers, this module looks for anything else its fixtures changed:

- attributes of any module (`module_watch.py`) or of the test's class rebound, added or deleted since the
  workers were forked; switches with no setter (`process_switches.py`); modules imported since;
- `monkeypatch.setattr`/`delattr` on anything, and `monkeypatch.setitem`/`delitem` on any mapping but
  `os.environ`, by the test's `monkeypatch`;
- environment variables that NCCL, gloo, xccl, CUDA or Level Zero read when the worker's process group or
  device started (`NCCL_*`, `CUDA_*`, `TORCH_NCCL_*`, ...): a fresh rank starts with them, a worker has not;
- accelerator seeding queued in a way torch's queue does not let `carried_state` read.

Such a test runs on fresh ranks. Before its fixtures run, a test whose modules, class or switches already
differ from the workers' (a module- or class-scoped fixture of an earlier test changed them, or imported a
module) gets new workers forked then.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from types import ModuleType

import pytest
from _pytest.monkeypatch import MonkeyPatch

from harness.pytest_plugin.reuse.module_watch import NamespaceCopy, differences

_LISTED = 3  # changes named per reason; the rest are counted


class ClassWatch:
    """Each distributed test's class namespace at the workers' fork, and the check (modules: module_watch)."""

    def __init__(self) -> None:
        self._base: dict[str, NamespaceCopy] = {}

    def take_base(self, items: Iterable[pytest.Function]) -> None:
        """At a fork: every class of these tests as the new workers inherit it."""
        self._base = {}
        for item in items:
            if item.cls is not None:
                self._base.setdefault(_label(item.cls), NamespaceCopy.of(vars(item.cls)))

    def changed_attributes(self, item: pytest.Function) -> list[str]:
        """'module.Class.name (set|rebound|deleted)' for each attribute of the test's class that differs from
        the workers'."""
        if item.cls is None:
            return []
        label = _label(item.cls)
        base = self._base.get(label)
        if base is None or base.same_as(vars(item.cls)):
            return []
        return differences(label, base.values, dict(vars(item.cls)))


def monkeypatched_beyond_environ(item: pytest.Function) -> list[str]:
    """What the test's `monkeypatch` set that is not an environment variable, cwd or sys.path (carried)."""
    changes: list[str] = []
    for value in item.funcargs.values():
        if not isinstance(value, MonkeyPatch):
            continue
        for target, name, _ in getattr(value, "_setattr", ()):
            changes.append(f"monkeypatch.setattr({_describe(target)}, {name!r})")
        for mapping, key, _ in getattr(value, "_setitem", ()):
            if mapping is not os.environ:
                changes.append(f"monkeypatch.setitem({_describe(mapping)}, {key!r})")
    return changes


# Read by NCCL, gloo, xccl, CUDA or Level Zero when a process group or device starts: a worker's have started.
READ_AT_START = (
    "NCCL_",
    "TORCH_NCCL_",
    "GLOO_",
    "TORCH_GLOO_",
    "CCL_",
    "TORCH_XCCL_",
    "CUDA_",
    "PYTORCH_CUDA_",
    "ZE_",
    "NVSHMEM_",
    "TORCH_SYMM_MEM_",
    "TORCH_DISTRIBUTED_",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def environment_read_at_start(changed: Iterable[str]) -> list[str]:
    """The changed environment variables a worker's process group or device read when they started, so that
    setting them now changes nothing there (a fresh rank starts with them)."""
    return sorted(name for name in changed if name.startswith(READ_AT_START))


def summarise(what: str, changes: list[str]) -> str:
    """'what: a, b, c and 2 more'."""
    listed = ", ".join(dict.fromkeys(changes[:_LISTED]))
    more = f" and {len(changes) - _LISTED} more" if len(changes) > _LISTED else ""
    return f"{what}: {listed}{more}"


def _label(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(target: object) -> str:
    if isinstance(target, ModuleType):
        return target.__name__
    if isinstance(target, type):
        return f"{target.__module__}.{target.__qualname__}"
    if target is sys.modules:
        return "sys.modules"
    return f"<{type(target).__name__} object>"
