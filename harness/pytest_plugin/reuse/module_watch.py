"""In the pytest process, reuse mode: which attributes of any imported module (the suite's, the standard
library's, site-packages') were set, rebound or deleted since the workers were forked, and which modules were
imported since.

A fork-mode rank inherits every module as the test's fixtures left it; a reuse worker has them as they were
at its fork. Comparing every attribute of every module before each test costs tens of milliseconds (52,974
attributes in 1,306 modules with torch, numpy and hypothesis imported), so this watch reads each module
dict's version tag instead: CPython bumps a dict's `ma_version_tag` on every change to it. All the tags (and
`sys.modules`' own) are read in one C-level call, an `itemgetter` over a ctypes view of the address space
(about 0.1 ms for 1,236 modules with the caches warm, half a Python loop over ctypes fields; between tests,
in place, about 0.5 ms: each dict read is a cache miss); only the dicts whose tag moved are compared, by
identity, with the copy taken at the fork. Where the interpreter keeps no such tag (checked at import:
CPython 3.14 dropped it), each module's keys and value identities are compared as two tuples with the
fork's: the same answers, about 9 ms a check.

pytest rebinds `sys.stdout` and `warnings.showwarning` around every test, so those two dicts move every
time; a moved dict whose differences are all ignored takes its new tag as its base, so each check compares
only what moved since the last one.

In-place changes of a value (a list appended to, an object's attribute set) do not change the module's dict
and are not seen here; `--dist-reuse check` finds what they change in an outcome.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter, ne
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
    # Rebound by hypothesis's gc callback every time the collector runs, once any test has drawn examples
    # in this process: bookkeeping of the collector's time, not a fixture's doing.
    "hypothesis.internal.conjecture.junkdrawer": {"_gc_start", "_gc_cumulative_time"},
    # Set by hypothesis's pytest plugin in every test's call phase (pytest's machinery, as sys.stdout is);
    # the workers get it set too (workers.py), as fresh ranks inherit it.
    "hypothesis.core": {"running_under_pytest"},
}
_ABSENT = object()
_WORD = ctypes.sizeof(ctypes.c_uint64)
# Every 8-byte word of the address space, as one ctypes array: indexing it reads memory, nothing is mapped or
# copied. Only the words of dicts this module holds a reference to are read.
_ADDRESS_SPACE = (ctypes.c_uint64 * (sys.maxsize // _WORD)).from_address(0)


def _version_offset() -> int | None:
    """Where a dict keeps its version tag (after the object header and `ma_used`), if this interpreter keeps
    one that every change bumps, at a word boundary; checked on a dict of our own rather than trusted."""
    offset = object.__basicsize__ + ctypes.sizeof(ctypes.c_ssize_t)
    probe: dict[str, int] = {}
    if (id(probe) + offset) % _WORD:
        return None
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


def _tag_reader(dicts: list[dict[str, Any]]) -> Callable[[], tuple[int, ...]]:
    """A function that returns the version tags of `dicts`, in order, in one C-level call."""
    assert _VERSION_OFFSET is not None
    words = itemgetter(*((id(d) + _VERSION_OFFSET) // _WORD for d in dicts))
    if len(dicts) == 1:  # itemgetter of one index gives the value, not a tuple
        return lambda: (words(_ADDRESS_SPACE),)
    return lambda: words(_ADDRESS_SPACE)


@dataclass
class NamespaceCopy:
    """One namespace's attributes at a moment: names and value identities for the fast comparison, and the
    values themselves, held so that no id can be reused by a new object while it is compared against."""

    names: tuple[str, ...]
    ids: tuple[int, ...]
    values: dict[str, Any]

    @classmethod
    def of(cls, namespace: Mapping[str, Any]) -> NamespaceCopy:
        values = dict(namespace)
        return cls(tuple(values), tuple(map(id, values.values())), values)

    def same_as(self, namespace: Mapping[str, Any]) -> bool:
        return tuple(map(id, namespace.values())) == self.ids and tuple(namespace) == self.names


def differences(
    label: str, base: Mapping[str, Any], now: Mapping[str, Any], ignored: Iterable[str] = ()
) -> list[str]:
    """'label.name (set|rebound|deleted)' for each attribute of `now` that is not `base`'s, by identity; a
    submodule imported since (the import binds it in its parent) is no fixture's doing."""
    changes = []
    for name in base.keys() | now.keys():
        before, after = base.get(name, _ABSENT), now.get(name, _ABSENT)
        if before is after or name in ignored:
            continue
        if isinstance(after, ModuleType) or (after is _ABSENT and isinstance(before, ModuleType)):
            continue
        what = "set" if before is _ABSENT else "deleted" if after is _ABSENT else "rebound"
        changes.append(f"{label}.{name} ({what})")
    return sorted(changes)


def _watched(name: str) -> bool:
    return not name.startswith(_NOT_WATCHED_PREFIXES)


class ModuleWatch:
    """Every module's namespace at the workers' fork, and the per-test comparison with it."""

    def __init__(self) -> None:
        self._modules: dict[str, Any] = {}  # name -> the module object at the fork
        self._names: list[str] = []
        self._dicts: list[dict[str, Any]] = []
        self._copies: list[NamespaceCopy] = []  # each watched module's namespace at the fork
        # With version tags: sys.modules' and each module dict's, as the last check left them.
        self._read_tags: Callable[[], tuple[int, ...]] | None = None
        self._tags: tuple[int, ...] = ()

    def take_base(self) -> None:
        """At a fork: every module and its namespace as the new workers inherit them."""
        self._modules, self._names, self._dicts, self._copies = {}, [], [], []
        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict) or not _watched(name):
                continue
            self._modules[name] = module
            self._names.append(name)
            self._dicts.append(namespace)
            self._copies.append(NamespaceCopy.of(namespace))
        if _VERSION_OFFSET is not None:
            self._read_tags = _tag_reader([sys.modules, *self._dicts])
            self._tags = self._read_tags()

    def changes(self) -> tuple[list[str], list[str]]:
        """('module.name (set|rebound|deleted)' for each attribute that differs from the fork, the watched
        modules imported since the fork, or replaced in sys.modules)."""
        if self._read_tags is None:
            return self._compare_all(), self._new_modules()
        tags = self._read_tags()
        if tags == self._tags:
            return [], []
        accepted = list(self._tags)
        changes: list[str] = []
        new_modules: list[str] = []
        for index in compress(range(len(tags)), map(ne, tags, self._tags)):
            if index == 0:  # sys.modules
                new_modules = self._new_modules()
                found = bool(new_modules)
            else:
                module = index - 1
                copy = self._copies[module]
                name = self._names[module]
                found_here = differences(name, copy.values, self._dicts[module], _IGNORED.get(name, ()))
                changes += found_here
                found = bool(found_here)
            # pytest's own rebinding, a change undone, a submodule imported: this dict is skipped again
            if not found:
                accepted[index] = tags[index]
        self._tags = tuple(accepted)
        return changes, new_modules

    def _compare_all(self) -> list[str]:
        changes: list[str] = []
        for name, copy, now in zip(self._names, self._copies, self._dicts, strict=True):
            if not copy.same_as(now):
                changes += differences(name, copy.values, now, _IGNORED.get(name, ()))
        return changes

    def _new_modules(self) -> list[str]:
        return sorted(
            name
            for name, module in list(sys.modules.items())
            if _watched(name)
            and self._modules.get(name, _ABSENT) is not module
            and isinstance(getattr(module, "__dict__", None), dict)
        )
