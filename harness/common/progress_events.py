"""A cell's progress events, typed: what the plugin writes to progress.jsonl and the harness reads back.

The plugin's `ProgressWriter` (harness/pytest_plugin/progress_writer.py) writes one JSON line per event with
`event_line`; the harness decodes each line with `parse_event_line` (the executors' `ProgressReader` while the
cell runs, `read_progress` once it ended). The file is written by the cell, that is by untrusted test code:
decoding rejects a line that is not one of the plugin's events and clips the text it keeps. `BuildLine` is
the harness's own (an image being built) and is never read from a file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

# Longest text kept from a line (a test id, a failure's first line, a reason); the writer's are shorter.
TEXT_CHARS = 2000
WHEN = ("setup", "call", "teardown")
OUTCOMES = ("passed", "failed", "skipped")
# Above any world size a cell can have: an Interrupted event naming more ranks is not the plugin's.
MAX_WORLD_SIZE = 1 << 16


@dataclass(frozen=True)
class Collected:
    """pytest collected `count` tests (the first event: the live view shows '12/40')."""

    KIND: ClassVar[str] = "collected"
    count: int
    time: float | None = None


@dataclass(frozen=True)
class Started:
    """A test started (its setup)."""

    KIND: ClassVar[str] = "start"
    nodeid: str
    time: float | None = None


@dataclass(frozen=True)
class Reported:
    """One phase of a test ended: pytest's report of its setup, call or teardown."""

    KIND: ClassVar[str] = "report"
    nodeid: str
    when: str  # one of WHEN
    outcome: str  # one of OUTCOMES
    duration: float = 0.0
    message: str | None = None  # a failure's first line
    known_gap: bool = False  # skipped as a known gap of the implementation under test


@dataclass(frozen=True)
class RanOnFreshRanks:
    """Reuse mode sent a distributed test to fresh ranks: `kind` groups the reasons, `reason` says which."""

    KIND: ClassVar[str] = "fresh_ranks"
    nodeid: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Interrupted:
    """pytest was interrupted (Ctrl-C) in a distributed test: the ranks that had finished its body, and not.

    `locations` and `stacks` go with `running`, rank for rank: the innermost frame of test code
    ("tests/x.py:12 test_hang") and the Python stack each still-running rank was in ("" when unknown).
    """

    KIND: ClassVar[str] = "interrupted"
    nodeid: str
    world_size: int
    running: tuple[int, ...]
    finished: tuple[int, ...]
    locations: tuple[str, ...] = ()
    stacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildLine:
    """A line of the image build a container cell waits for (made by the harness, not the plugin)."""

    KIND: ClassVar[str] = "build"
    line: str


ProgressEvent = Collected | Started | Reported | RanOnFreshRanks | Interrupted | BuildLine
# What the plugin writes to progress.jsonl.
PluginEvent = Collected | Started | Reported | RanOnFreshRanks | Interrupted
# Called by executors as the cell makes progress, with the cell's id.
ProgressCallback = Callable[[str, ProgressEvent], None]


def event_line(event: PluginEvent) -> str:
    """The event as one line of progress.jsonl (no newline)."""
    fields = dataclasses.asdict(event)
    if isinstance(event, Reported):
        # Left out rather than null, as the plugin has always written them: only failures and known gaps.
        if event.message is None:
            del fields["message"]
        if not event.known_gap:
            del fields["known_gap"]
    return json.dumps({"event": event.KIND, **fields})


def parse_event_line(line: bytes | str) -> PluginEvent | None:
    """The plugin's event on one line of progress.jsonl; None for a line that is not one (skipped)."""
    try:
        document = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    kind = document.get("event")
    if kind == Collected.KIND:
        count = document.get("count")
        if type(count) is not int or count < 0:
            return None
        return Collected(count, _time(document))
    nodeid = _text(document.get("nodeid"))
    if nodeid is None:
        return None
    if kind == Started.KIND:
        return Started(nodeid, _time(document))
    if kind == Reported.KIND:
        when, outcome = document.get("when"), document.get("outcome")
        if when not in WHEN or outcome not in OUTCOMES:
            return None
        duration = _number(document.get("duration"))
        return Reported(
            nodeid,
            when,
            outcome,
            duration=0.0 if duration is None or duration < 0 else duration,
            message=_text(document.get("message")),
            known_gap=document.get("known_gap") is True,
        )
    if kind == RanOnFreshRanks.KIND:
        return RanOnFreshRanks(nodeid, _text(document.get("kind")) or "", _text(document.get("reason")) or "")
    if kind == Interrupted.KIND:
        return _interrupted(nodeid, document)
    return None


def _interrupted(nodeid: str, document: dict[str, Any]) -> Interrupted | None:
    world_size = document.get("world_size")
    if type(world_size) is not int or not 0 < world_size <= MAX_WORLD_SIZE:
        return None
    running = _ranks(document.get("running"), world_size)
    finished = _ranks(document.get("finished"), world_size)
    if running is None or finished is None or set(running) & set(finished):
        return None
    locations = _texts(document.get("locations"), len(running))
    stacks = _texts(document.get("stacks"), len(running))
    if locations is None or stacks is None:
        return None
    return Interrupted(nodeid, world_size, running, finished, locations, stacks)


def _ranks(value: object, world_size: int) -> tuple[int, ...] | None:
    """Distinct ranks below `world_size`, or None when `value` is not such a list."""
    if not isinstance(value, list) or not all(type(rank) is int and 0 <= rank < world_size for rank in value):
        return None
    return tuple(value) if len(set(value)) == len(value) else None


def _texts(value: object, most: int) -> tuple[str, ...] | None:
    """At most `most` strings (clipped); a missing list is no texts."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > most or not all(isinstance(text, str) for text in value):
        return None
    return tuple(text[:TEXT_CHARS] for text in value)


def _text(value: object) -> str | None:
    return value[:TEXT_CHARS] if isinstance(value, str) else None


def _number(value: object) -> float | None:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        return None
    return float(value)  # type: ignore[arg-type]


def _time(document: dict[str, Any]) -> float | None:
    return _number(document.get("time"))
