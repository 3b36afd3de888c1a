"""progress.jsonl: the plugin's events come back typed; a cell's other lines are skipped or clipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.common.progress_events import (
    TEXT_CHARS,
    Collected,
    Interrupted,
    ProgressEvent,
    RanOnFreshRanks,
    Reported,
    Started,
    event_line,
    parse_event_line,
)
from harness.running.executors.progress_reader import ProgressReader

EVENTS = [
    Collected(3, time=1.5),
    Started("tests/t.py::test_a", time=2.0),
    Reported("tests/t.py::test_a", "call", "failed", duration=0.25, message="rank 1 of 2 failed: boom"),
    Reported("tests/t.py::test_b", "call", "skipped", known_gap=True),
    Reported("tests/t.py::test_b", "teardown", "passed"),
    RanOnFreshRanks("tests/t.py::test_c", "marked dist_fork", "the test is marked dist_fork"),
    Interrupted("tests/t.py::test_d", 4, (1, 3), (0, 2), ("tests/t.py:6 test_d", ""), ("Current thread", "")),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_every_event_reads_back_as_written(event):
    assert parse_event_line(event_line(event)) == event


def test_the_lines_keep_the_format_the_plugin_has_always_written():
    assert json.loads(event_line(EVENTS[0])) == {"event": "collected", "count": 3, "time": 1.5}
    # message and known_gap appear only where they say something.
    assert json.loads(event_line(EVENTS[4])) == {
        "event": "report",
        "nodeid": "tests/t.py::test_b",
        "when": "teardown",
        "outcome": "passed",
        "duration": 0.0,
    }
    assert json.loads(event_line(EVENTS[3]))["known_gap"] is True


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"event": "explode"}',
        b'{"event": "build", "line": "Step 1/9 : FROM a test that pretends to build"}',
        b'{"event": "collected", "count": "12"}',
        b'{"event": "collected", "count": -1}',
        b'{"event": "collected", "count": true}',
        b'{"event": "start", "nodeid": 7}',
        b'{"event": "report", "nodeid": "t", "when": "call", "outcome": "exploded"}',
        b'{"event": "report", "nodeid": "t", "when": "later", "outcome": "passed"}',
        b'{"event": "report", "nodeid": "t", "when": "call"}',
        b"[" * 100_000,
        # Interrupted: ranks that are not distinct ranks of the world, texts that do not go with them.
        b'{"event": "interrupted", "nodeid": "t", "world_size": 0, "running": [], "finished": []}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": [2], "finished": [0]}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": [1, 1], "finished": []}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": [1], "finished": [1]}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": [-1], "finished": [0]}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": [true], "finished": [0]}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": "1", "finished": [0]}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": [1], "finished": [0], '
        b'"locations": ["a", "b"]}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2, "running": [1], "finished": [0], '
        b'"stacks": [7]}',
        b'{"event": "interrupted", "nodeid": "t", "world_size": 2.0, "running": [1], "finished": [0]}',
    ],
)
def test_a_line_that_is_not_one_of_the_plugins_events_is_skipped(line):
    assert parse_event_line(line) is None


def test_text_is_clipped_and_odd_optional_fields_fall_back():
    line = json.dumps(
        {
            "event": "report",
            "nodeid": "t" * (TEXT_CHARS + 50),
            "when": "call",
            "outcome": "failed",
            "duration": float("nan"),
            "message": ["not", "text"],
            "known_gap": "yes",
        }
    )
    event = parse_event_line(line)
    assert event == Reported("t" * TEXT_CHARS, "call", "failed", duration=0.0, message=None, known_gap=False)


def test_an_interrupted_events_stacks_are_clipped_and_may_be_left_out():
    line = json.dumps(
        {
            "event": "interrupted",
            "nodeid": "t",
            "world_size": 2,
            "running": [1],
            "finished": [0],
            "stacks": ["s" * (TEXT_CHARS + 9)],
        }
    )
    assert parse_event_line(line) == Interrupted("t", 2, (1,), (0,), (), ("s" * TEXT_CHARS,))


def test_the_reader_hands_on_typed_events_of_complete_lines_only(tmp_path: Path):
    path = tmp_path / "progress.jsonl"
    seen: list[tuple[str, ProgressEvent]] = []
    with ProgressReader(path, "cpu-gloo-ws2", lambda cell, event: seen.append((cell, event)), poll_s=60):
        path.write_text(
            event_line(EVENTS[0]) + "\n{oops\n" + event_line(EVENTS[1]) + "\n" + event_line(EVENTS[2])[:20]
        )
    assert seen == [("cpu-gloo-ws2", EVENTS[0]), ("cpu-gloo-ws2", EVENTS[1])]
