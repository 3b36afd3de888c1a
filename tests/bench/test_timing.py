"""How the bench times: back to back with one synchronize at the end, or with one after each phase.

Each test runs `time_interleaved` in a forked single-rank gloo process (it needs a process group) with a
clock that records when it synchronizes; nothing here asserts on a time.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.bench.timing import DeviceClock, time_interleaved


@dataclass(frozen=True)
class RecordingClock(DeviceClock):
    """A CPU clock that writes "sync" into `events` whenever the bench waits for the device."""

    events: list[str] = field(default_factory=list)

    def synchronize(self) -> None:
        self.events.append("sync")


def _in_a_single_rank(body: Callable[[], Any], tmp_path: os.PathLike) -> Any:
    """`body()`'s result, run in a forked process that holds a world-size-1 gloo group."""

    def child(conn: Any) -> None:
        import torch.distributed as dist

        dist.init_process_group(
            "gloo", store=dist.FileStore(str(tmp_path) + "/store", 1), rank=0, world_size=1
        )
        try:
            conn.send(body())
        finally:
            dist.destroy_process_group()
            conn.close()

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=child, args=(sender,))
    process.start()
    sender.close()
    result = receiver.recv()
    process.join(timeout=30)
    assert process.exitcode == 0
    return result


def test_iterations_run_back_to_back_with_one_synchronize_at_the_end(tmp_path) -> None:
    def body() -> list[str]:
        clock = RecordingClock(torch.device("cpu"))
        times = time_interleaved(clock, [lambda: clock.events.append("call")], warmup=0, iters=4, repeats=2)
        assert len(times) == 1 and len(times[0]) == 1 and times[0][0] >= 0
        return clock.events

    events = _in_a_single_rank(body, tmp_path)
    # Per repeat: the barrier's two synchronizes, four calls with nothing between them, one synchronize.
    assert events == ["sync", "sync", "call", "call", "call", "call", "sync"] * 2


def test_a_phased_candidate_synchronizes_after_every_phase(tmp_path) -> None:
    def body() -> list[str]:
        clock = RecordingClock(torch.device("cpu"))

        def round_trip() -> Iterator[None]:
            clock.events.append("dispatch")
            yield
            clock.events.append("combine")
            yield

        times = time_interleaved(clock, [round_trip], warmup=0, iters=2, repeats=1, phases=2)
        assert len(times[0]) == 2
        return clock.events

    events = _in_a_single_rank(body, tmp_path)
    assert events == ["sync", "sync", *(["dispatch", "sync", "combine", "sync"] * 2)]
