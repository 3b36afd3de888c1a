"""Warnings a test body raises on its ranks: recorded in each rank, merged and re-issued in pytest.

A rank is a fork of pytest: without this, a warning it raises goes to a copy of pytest's warning log that dies
with the rank, so it never reaches the warnings summary. Each rank applies pytest's filters for the test
(ini `filterwarnings`, `-W`, `filterwarnings` marks): an "error" filter raises in the body, where it was
warned, and fails the rank; "ignore" drops it. What the filters let through goes to pytest with the rank's
outcome, and pytest's call phase issues it again with `warnings.warn_explicit`, naming the ranks, for pytest's
own warnings plugin to record.

`record_warnings` and `restore_session_filters` run in a rank; the rest in the pytest process (or in
pytest-forked's child of it, which hands what it issued to the pytest process on the call report).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _pytest.warnings import catch_warnings_for_item

from harness.pytest_plugin.outcomes import RankWarning, WarningOnRanks, describe_ranks

# What pytest-forked's child re-issued, per warning (category's qualified name, message, filename, lineno):
# plain tuples, as pytest-forked marshals the reports it sends back.
_ISSUED_IN_FORKED_CHILD = pytest.StashKey[list[tuple[str, str, str, int]]]()
_REPORT_ATTRIBUTE = "comm_harness_warnings"


@contextmanager
def record_warnings(item: pytest.Item) -> Iterator[list[RankWarning]]:
    """In a rank: apply pytest's warning filters for `item` around the block and record what gets through.

    The list it yields is filled, one entry per distinct warning, when the block ends.
    """
    recorded: list[RankWarning] = []
    # record=False: only the filters, exactly as pytest sets them up for the item; the log is ours.
    with catch_warnings_for_item(item.config, item.ihook, "runtest", item, record=False):
        with warnings.catch_warnings(record=True) as log:
            yield recorded
    seen: set[RankWarning] = set()
    for entry in log:
        warning = RankWarning(
            _qualified_name(entry.category), str(entry.message), entry.filename, entry.lineno
        )
        if warning not in seen:
            seen.add(warning)
            recorded.append(warning)


def session_filters() -> list[Any]:
    """The pytest process's warning filters outside any test (ini and `-W` ones included)."""
    return list(warnings.filters)


def restore_session_filters(filters: list[Any]) -> None:
    """In a reuse worker: drop the filters of the test it was forked in (its marks), keep the session's."""
    warnings.resetwarnings()  # also invalidates what the interpreter cached from the old filters
    warnings.filters[:] = filters


def reissue(merged: tuple[WarningOnRanks, ...], world_size: int) -> list[str]:
    """Warn each again in this process, through pytest's filters; return those the filters made errors.

    Each message ends with the ranks that raised it. A filter that turns one into an error here (the rank did
    not: its category could not be resolved here, or the body changed the filters) does not stop the others.
    """
    errors: list[str] = []
    for entry in merged:
        category, message = _resolve(entry.warning)
        text = f"{message} (on {describe_ranks(entry.ranks)} of {world_size})"
        try:
            warnings.warn_explicit(text, category, entry.warning.filename, entry.warning.lineno)
        except Warning as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return errors


def reissue_for_item(
    item: pytest.Item, merged: tuple[WarningOnRanks, ...], world_size: int, in_forked_child: bool
) -> list[str]:
    """`reissue` in the test's call phase; in pytest-forked's child, keep what got through for its report."""
    if not in_forked_child:
        return reissue(merged, world_size)
    with warnings.catch_warnings(record=True) as log:  # keeps pytest's filters for the item
        errors = reissue(merged, world_size)
    item.stash[_ISSUED_IN_FORKED_CHILD] = [
        (_qualified_name(w.category), str(w.message), w.filename, w.lineno) for w in log
    ]
    return errors


class WarningsFromForkedChildren:
    """Hooks that carry the warnings re-issued in pytest-forked's child, whose warning log dies with it,
    to pytest's warnings summary: on the call report, the one thing pytest-forked sends back."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
        report = yield
        issued = item.stash.get(_ISSUED_IN_FORKED_CHILD, None)
        if call.when == "call" and issued:
            setattr(report, _REPORT_ATTRIBUTE, issued)  # report attributes survive pytest-forked's marshal
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # In pytest only: the child runs its tests with log=False, and only its call reports carry the list.
        for category_name, message, filename, lineno in getattr(report, _REPORT_ATTRIBUTE, ()):
            category, message = _resolve(RankWarning(category_name, message, filename, lineno))
            self._config.hook.pytest_warning_recorded.call_historic(
                kwargs=dict(
                    warning_message=warnings.WarningMessage(category(message), category, filename, lineno),
                    nodeid=report.nodeid,
                    when="runtest",
                    location=None,
                )
            )


def _resolve(warning: RankWarning) -> tuple[type[Warning], str]:
    """The category class, found among the modules this process has imported, and the message.

    Only imported modules: importing one here could initialise an accelerator in pytest, after which no
    working rank can be forked from it. A `-W` or marker filter imports its category, so filtering works.
    """
    parts = warning.category.split(".")
    for split in range(len(parts) - 1, 0, -1):  # the longest imported module, then the class path in it
        found: Any = sys.modules.get(".".join(parts[:split]))
        if found is None:
            continue
        for name in parts[split:]:
            found = getattr(found, name, None)
        if isinstance(found, type) and issubclass(found, Warning):
            return found, warning.message
        break
    return UserWarning, f"{warning.category}: {warning.message}"


def _qualified_name(category: type) -> str:
    return f"{category.__module__}.{category.__qualname__}"
