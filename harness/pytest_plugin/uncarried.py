"""In the pytest process: what a test's fixtures changed that reuse workers cannot be given by value.

Fork mode's ranks inherit all of pytest's memory; reuse workers were forked earlier, and `carried_state.py`
gives them only the environment, working directory, `sys.path`, RNG states and torch's switches. So before a
test runs on the workers, this module looks for anything else its fixtures changed:

- attributes of the namespaces relevant to the test rebound, added or deleted since the workers were forked:
  the test's module, its class, the modules defining the fixtures it uses (conftest.py files, plugins), and
  every module these name in their globals (imported modules, and those that define imported functions and
  classes). Only the suite's and the project's own modules are watched: not the standard library, nor what
  is installed in site-packages (torch alone has 1500 attributes; comparing them before every test would
  cost more than the rest of reuse mode), nor pytest and this plugin. Compared by identity of the values,
  so the check costs microseconds; a new attribute that is itself a module (a submodule imported since) is
  harmless and ignored. In-place changes (a list appended to, a dict updated) are not seen;
- `monkeypatch.setattr`/`delattr` on anything, and `monkeypatch.setitem`/`delitem` on any mapping but
  `os.environ`, by the test's `monkeypatch`;
- environment variables that NCCL, gloo, xccl, CUDA or Level Zero read when the worker's process group or
  device started (`NCCL_*`, `CUDA_*`, `TORCH_NCCL_*`, ...): a fresh rank starts with them, a worker has not;
- accelerator seeding queued in a way torch's queue does not let `carried_state` read.

Such a test runs on fresh ranks. Before its fixtures run, a test whose namespaces already differ from the
workers' (a module- or class-scoped fixture of an earlier test changed them) gets new workers forked then.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from _pytest.monkeypatch import MonkeyPatch

_NOT_WATCHED = frozenset(sys.stdlib_module_names) | {"pytest", "_pytest", "pluggy", "py", "__main__"}
_PLUGIN_PACKAGE = __name__.rpartition(".")[0]
# Attributes that change with a switch `carried_state` carries: torch.set_default_dtype rebinds torch.Storage.
_REBOUND_BY_CARRIED_SWITCHES = {("torch", "Storage")}
_LISTED = 3  # changes named per reason; the rest are counted


@dataclass
class _NamespaceCopy:
    """One namespace's attributes at a moment: names and value identities for the fast comparison, and the
    values themselves, held so that no id can be reused by a new object while it is compared against."""

    names: tuple[str, ...]
    ids: tuple[int, ...]
    values: dict[str, Any]

    @classmethod
    def of(cls, namespace: Mapping[str, Any]) -> _NamespaceCopy:
        values = dict(namespace)
        return cls(tuple(values), tuple(map(id, values.values())), values)

    def same_as(self, namespace: Mapping[str, Any]) -> bool:
        return tuple(namespace) == self.names and tuple(map(id, namespace.values())) == self.ids


class NamespaceWatch:
    """The namespaces that matter to each test, their state when the workers were forked, and the checks."""

    def __init__(self) -> None:
        self._of_item: dict[str, dict[str, Mapping[str, Any]]] = {}  # nodeid -> label -> namespace
        self._referenced: dict[str, dict[str, Mapping[str, Any]]] = {}  # module name -> its referenced ones
        self._base: dict[str, _NamespaceCopy] = {}

    def take_base(self, items: Iterable[pytest.Function]) -> None:
        """At a fork: every namespace of these tests as the new workers inherit it."""
        namespaces: dict[str, Mapping[str, Any]] = {}
        for item in items:
            namespaces.update(self._namespaces(item))
        self._base = {label: _NamespaceCopy.of(namespace) for label, namespace in namespaces.items()}

    def changed_attributes(self, item: pytest.Function) -> list[str]:
        """'module.name (set|rebound|deleted)' for each attribute of the test's namespaces that differs from
        the workers' (modules imported since the fork excepted)."""
        changes: list[str] = []
        for label, namespace in self._namespaces(item).items():
            base = self._base.get(label)
            if base is None or base.same_as(namespace):
                continue
            found = _differences(label, base.values, dict(namespace))
            if found:
                changes += found
            else:  # only submodules imported since: keep the fast path for the next test
                self._base[label] = _NamespaceCopy.of(namespace)
        return changes

    def _namespaces(self, item: pytest.Function) -> dict[str, Mapping[str, Any]]:
        found = self._of_item.get(item.nodeid)
        if found is None:
            found = {}
            modules = [item.module] if item.module is not None else []
            for definitions in item._fixtureinfo.name2fixturedefs.values():
                for definition in definitions:
                    module = sys.modules.get(getattr(definition.func, "__module__", None) or "")
                    if module is not None:
                        modules.append(module)
            for module in modules:
                if _watched(module):
                    found[module.__name__] = vars(module)
                    found.update(self._referenced_by(module))
            if item.cls is not None:
                found[f"{item.cls.__module__}.{item.cls.__qualname__}"] = vars(item.cls)
            self._of_item[item.nodeid] = found
        return found

    def _referenced_by(self, module: ModuleType) -> dict[str, Mapping[str, Any]]:
        found = self._referenced.get(module.__name__)
        if found is None:
            found = {}
            for value in list(vars(module).values()):
                name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
                referenced = sys.modules.get(name) if isinstance(name, str) else None
                if referenced is not None and _watched(referenced):
                    found[referenced.__name__] = vars(referenced)
            self._referenced[module.__name__] = found
        return found


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


def _differences(label: str, base: dict[str, Any], now: dict[str, Any]) -> list[str]:
    changes = []
    for name in base.keys() | now.keys():
        before, after = base.get(name, _ABSENT), now.get(name, _ABSENT)
        if before is after or isinstance(after, ModuleType):
            continue
        if after is _ABSENT and isinstance(before, ModuleType):
            continue
        if (label, name) in _REBOUND_BY_CARRIED_SWITCHES:
            continue
        what = "set" if before is _ABSENT else "deleted" if after is _ABSENT else "rebound"
        changes.append(f"{label}.{name} ({what})")
    return sorted(changes)


def _watched(module: ModuleType) -> bool:
    name = module.__name__
    if name.partition(".")[0] in _NOT_WATCHED or name.startswith(_PLUGIN_PACKAGE):
        return False
    path = getattr(module, "__file__", None)
    return isinstance(path, str) and not path.startswith(_INSTALLED)


def _installed_package_dirs() -> tuple[str, ...]:
    """Where installed distributions live: site-packages, Debian's dist-packages, the user's site."""
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    paths.update(getattr(site, "getsitepackages", list)())
    paths.add(site.getusersitepackages())
    paths.update(entry for entry in sys.path if entry.endswith(("site-packages", "dist-packages")))
    return tuple({os.path.join(real, "") for path in paths for real in (path, os.path.realpath(path))})


_INSTALLED = _installed_package_dirs()


def _describe(target: object) -> str:
    if isinstance(target, ModuleType):
        return target.__name__
    if isinstance(target, type):
        return f"{target.__module__}.{target.__qualname__}"
    if target is sys.modules:
        return "sys.modules"
    return f"<{type(target).__name__} object>"


_ABSENT = object()
