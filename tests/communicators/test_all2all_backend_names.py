"""What a communicator under test does with all2all backend names, judged by comm-harness's one rule.

Distributed, through `communicator_factory`: each body makes communicators of the run's target and platform
with one name. What the name must run comes from `communicators.plan_all2all_backend` (the table in
docs/communicators.md): aliases and backends a platform lacks run allgather_reducescatter, unknown names
are a ValueError.

Each observation has its own test, so that none shadows another: the manager that runs, the name the
communicator reports, and what it says on the way — Python warnings and log records of any logger (an engine
such as vLLM logs its fallbacks through its own logger, which does not propagate to the root). A failure
names what was observed (manager class, reported name, the warnings' text), so a recorded gap says what the
implementation does, and a changed manager cannot hide behind a matching name.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from communicators import All2AllBackendFallbackWarning, plan_all2all_backend

AGRS = "allgather_reducescatter"
AGRS_MANAGER = "AgRsAll2AllManager"
NAMES = [AGRS, "naive", "pplx", "deepep_low_latency"]
# What a fallback notice must name as the backend that runs: its name, or its manager's ("AgRs manager").
RUNS_AGRS = re.compile(r"allgather_reducescatter|AgRs", re.IGNORECASE)
FALLING_BACK = re.compile(r"fall(?:ing)? ?back", re.IGNORECASE)


@dataclass(frozen=True)
class Observed:
    """What making a communicator with one backend name gave: the manager, the name reported, the notices."""

    manager: str
    reported: str
    notices: tuple[str, ...]  # warnings and log records at WARNING or above, in order

    def __str__(self) -> str:
        said = " | ".join(self.notices) or "nothing"
        return f"manager {self.manager}, reported {self.reported!r}, warned: {said}"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _every_log_record() -> Iterator[list[str]]:
    """The messages logged at WARNING or above by any logger: the root's, and those of loggers that do not
    propagate to it (vLLM's "vllm" logger has its own handler and propagate=False)."""
    handler = _Collect()
    loggers = [logging.getLogger()] + [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _observe(communicator_factory, name: str) -> Observed:
    with warnings.catch_warnings(record=True) as caught, _every_log_record() as logged:
        warnings.simplefilter("always")
        made = communicator_factory(name)
        try:
            backend, manager = made.all2all_backend, made.all2all_manager
        finally:
            made.destroy()
    notices: list[str] = []
    # One notice given both ways (a warning also logged, as comm-harness does) counts once.
    for text in [str(warning.message) for warning in caught] + logged:
        if text not in notices:
            notices.append(text)
    return Observed(type(manager).__name__, str(backend), tuple(notices))


def _agrs_plan(platform: str, name: str):
    plan = plan_all2all_backend(platform, name)
    if plan.backend != AGRS:
        pytest.skip(f"{name!r} runs {plan.backend!r} on {platform} here")
    return plan


@pytest.mark.parametrize("name", NAMES)
def test_a_known_name_runs_the_manager_the_rule_names(communicator_factory, communicator_platform, name):
    _agrs_plan(communicator_platform.name, name)
    seen = _observe(communicator_factory, name)
    assert seen.manager == AGRS_MANAGER, f"{name!r} was asked for: {seen}; {AGRS_MANAGER} expected"


@pytest.mark.parametrize("name", NAMES)
def test_a_known_name_reports_the_backend_that_runs(communicator_factory, communicator_platform, name):
    _agrs_plan(communicator_platform.name, name)
    seen = _observe(communicator_factory, name)
    assert seen.reported == AGRS, f"{name!r} was asked for: {seen}; {AGRS!r} expected as all2all_backend"


@pytest.mark.parametrize("name", NAMES)
def test_a_fallback_is_announced_naming_what_runs(communicator_factory, communicator_platform, name):
    """A name the platform cannot run is announced (warning or log) naming it and the backend that runs
    instead; a name that runs as asked announces no fallback."""
    plan = _agrs_plan(communicator_platform.name, name)
    seen = _observe(communicator_factory, name)
    fallbacks = [text for text in seen.notices if FALLING_BACK.search(text)]
    if not any(issubclass(category, All2AllBackendFallbackWarning) for category, _ in plan.warnings):
        assert not fallbacks, f"{name!r} runs as asked on {communicator_platform.name}, yet: {seen}"
        return
    announced = [text for text in fallbacks if name in text]
    assert announced, f"{name!r} falls back on {communicator_platform.name}, unannounced: {seen}"
    assert all(RUNS_AGRS.search(text) for text in announced), (
        f"{name!r}: the fallback names another backend than {AGRS!r}: {seen}"
    )


def test_an_unknown_name_is_a_value_error(communicator_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no_such_backend"):
            made = communicator_factory("no_such_backend")
            # An engine may resolve the name only when the manager is first needed.
            made.all2all_manager  # noqa: B018
