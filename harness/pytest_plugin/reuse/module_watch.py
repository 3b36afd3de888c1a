"""In the pytest process, reuse mode: which attributes of any imported module (the suite's, the standard
library's, site-packages') were set, rebound or deleted since the workers were forked, and which modules were
imported since.

A fork-mode rank inherits every module as the test's fixtures left it; a reuse worker has them as they were
at its fork. Comparing every attribute of every module before each test costs tens of milliseconds (52,974
attributes in 1,306 modules with torch, numpy and hypothesis imported), so this watch reads each module
dict's version tag instead: CPython bumps a dict's `ma_version_tag` on every change to it, so one list of
integers read through ctypes (about 0.15 ms for 2,000 modules) says which dicts changed at all, and only
those are compared by identity with the copy taken at the fork. Where the interpreter keeps no such tag
(checked at import: CPython 3.14 dropped it), every dict is compared by identity instead, slower but the same.

In-place changes of a value (a list appended to, an object's attribute set) do not change the module's dict
and are not seen here; `--dist-reuse check` finds what they change in an outcome.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

# Not watched: pytest and this plugin change their own modules around every test, and the interpreter's
# standard streams and last-exception slots are pytest's capture and report machinery, not a fixture's.
_NOT_WATCHED_PREFIXES = (
    "pytest",
    "_pytest",
    "pluggy",
    "harness.pytest_plugin",
    "__main__",
    "xdist",
    "pytest_",
)
_IGNORED = {
    "sys": {"stdout", "stderr", "stdin", "last_type", "last_value", "last_traceback", "last_exc"},
    # pytest's catch_warnings_for_item, around every test, rebinds these; the filters are carried.
    "warnings": {"showwarning", "_showwarnmsg_impl", "filters", "_filters_version"},
    # Caches filled on first use, whatever the test: a fresh rank refills them the same way.
    "tempfile": {"tempdir", "_name_sequence"},
    "linecache": {"cache"},
    # Rebound by switches that process_switches carries: torch.set_default_dtype, torch.set_default_device.
    "torch": {"Storage"},
    "torch.utils._device": {"CURRENT_DEVICE"},
}
_ABSENT = object()


def _version_offset() -> int | None:
    """Where a dict keeps its version tag (after the object header and `ma_used`), if this interpreter keeps
    one that every change bumps; checked on a dict of our own rather than trusted."""
    offset = object.__basicsize__ + ctypes.sizeof(ctypes.c_ssize_t)
    probe: dict[str, int] = {}
    tag = ctypes.c_uint64.from_address(id(probe) + offset)
    seen = [tag.value]
    probe["a"] = 1
    seen.append(tag.value)
    probe["a"] = 2
    seen.append(tag.value)
    del probe["a"]
    seen.append(tag.value)
    return offset if len(set(seen)) == len(seen) and sys.implementation.name == "cpython" else None


_VERSION_OFFSET = _version_offset()


def _watched(name: str) -> bool:
    return not name.startswith(_NOT_WATCHED_PREFIXES)


class ModuleWatch:
    """Every module's namespace at the workers' fork, and the per-test comparison with it."""

    def __init__(self) -> None:
        self._modules: dict[str, Any] = {}  # name -> the module object at the fork
        self._copies: dict[str, dict[str, Any]] = {}  # name -> its namespace at the fork
        self._dicts: list[dict[str, Any]] = []
        self._names: list[str] = []
        self._tags: list[Any] = []  # ctypes views of each dict's version tag
        self._versions: list[int] = []
        self._modules_tag: Any = None
        self._modules_version = -1

    def take_base(self) -> None:
        """At a fork: every module and its namespace as the new workers inherit them."""
        self._modules, self._copies, self._dicts, self._names = {}, {}, [], []
        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict) or not _watched(name):
                continue
            self._modules[name] = module
            self._copies[name] = dict(namespace)
            self._dicts.append(namespace)
            self._names.append(name)
        if _VERSION_OFFSET is not None:
            self._tags = [ctypes.c_uint64.from_address(id(d) + _VERSION_OFFSET) for d in self._dicts]
            self._versions = [tag.value for tag in self._tags]
            self._modules_tag = ctypes.c_uint64.from_address(id(sys.modules) + _VERSION_OFFSET)
            self._modules_version = self._modules_tag.value

    def changes(self) -> tuple[list[str], list[str]]:
        """('module.name (set|rebound|deleted)' for each attribute that differs from the fork, the watched
        modules imported since the fork, or replaced in sys.modules)."""
        return self._changed_attributes(), self._new_modules()

    def _changed_attributes(self) -> list[str]:
        changes: list[str] = []
        for index in self._changed_dicts():
            name = self._names[index]
            found = _differences(name, self._copies[name], self._dicts[index])
            if found:
                changes += found
            elif self._tags:  # a change undone, or a submodule imported: the fast path again next time
                self._versions[index] = self._tags[index].value
        return changes

    def _changed_dicts(self) -> Iterator[int]:
        if not self._tags:
            for index, name in enumerate(self._names):
                copy, now = self._copies[name], self._dicts[index]
                if len(copy) != len(now) or any(now.get(k, _ABSENT) is not v for k, v in copy.items()):
                    yield index
            return
        versions = [tag.value for tag in self._tags]
        if versions == self._versions:
            return
        pairs = enumerate(zip(versions, self._versions, strict=True))
        yield from (index for index, (now, then) in pairs if now != then)

    def _new_modules(self) -> list[str]:
        if self._modules_tag is not None and self._modules_tag.value == self._modules_version:
            return []
        new = sorted(
            name
            for name, module in list(sys.modules.items())
            if _watched(name)
            and self._modules.get(name, _ABSENT) is not module
            and isinstance(getattr(module, "__dict__", None), dict)
        )
        if not new and self._modules_tag is not None:
            self._modules_version = self._modules_tag.value
        return new


def _differences(label: str, base: dict[str, Any], now: dict[str, Any]) -> list[str]:
    ignored = _IGNORED.get(label, ())
    changes = []
    for name in base.keys() | now.keys():
        before, after = base.get(name, _ABSENT), now.get(name, _ABSENT)
        if before is after or name in ignored:
            continue
        # A submodule imported since (the import binds it in its parent) is no fixture's doing.
        if isinstance(after, ModuleType) or (after is _ABSENT and isinstance(before, ModuleType)):
            continue
        what = "set" if before is _ABSENT else "deleted" if after is _ABSENT else "rebound"
        changes.append(f"{label}.{name} ({what})")
    return sorted(changes)
