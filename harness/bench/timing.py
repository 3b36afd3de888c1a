"""Timing inside the ranks: interleaved repeats of back-to-back iterations, the slowest rank's time.

Every repeat starts together (a barrier) and ends when this rank's device is idle, so a repeat's time is
one rank's wall time of `iters` iterations; the time of a repeat is the maximum over ranks (the slowest
rank bounds a collective), and the reported time is the median over repeats, which keeps a burst of load
from another process on a shared CPU out of the figure. Every repeat's time is kept too: `harness compare`
judges two runs on them. Candidates compared with each other (the
communicator against raw torch.distributed, AgRs against the naive reference) are timed in alternation
within each repeat, in alternating order, so that drifting load hits them alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DeviceClock:
    """How this rank waits for its device and for its peers."""

    device: torch.device

    def synchronize(self) -> None:
        """Block until every kernel queued on this rank's device has finished (nothing on the CPU)."""
        if self.device.type != "cpu":
            getattr(torch, self.device.type).synchronize(self.device)

    def barrier(self) -> None:
        """Every rank reaches this point with an idle device."""
        self.synchronize()
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()
        self.synchronize()


def time_interleaved(
    clock: DeviceClock, candidates: Sequence[Callable[[], object]], **timing: int
) -> list[list[float]]:
    """Seconds per iteration of each candidate, per phase: the median over repeats of the slowest rank.

    `timing` is `sample_interleaved`'s: warmup, iters, repeats and optionally phases.
    """
    samples = sample_interleaved(clock, candidates, **timing)
    phases = samples.shape[2]
    return [
        [statistics.median(samples[:, index, phase].tolist()) for phase in range(phases)]
        for index in range(len(candidates))
    ]


def repeat_times(
    clock: DeviceClock, candidates: Sequence[Callable[[], object]], **timing: int
) -> list[list[float]]:
    """Seconds per iteration of each (one-phase) candidate in each repeat, in repeat order (slowest rank).

    Reported times are their medians; comparisons between candidates in one run use the best repeats (a
    burst of load only ever adds time); `harness compare` resamples all of them. `timing` is
    `sample_interleaved`'s.
    """
    samples = sample_interleaved(clock, candidates, **timing)[:, :, 0]
    return [samples[:, index].tolist() for index in range(len(candidates))]


def sample_interleaved(
    clock: DeviceClock,
    candidates: Sequence[Callable[[], object]],
    *,
    warmup: int,
    iters: int,
    repeats: int,
    phases: int = 1,
) -> torch.Tensor:
    """Seconds per iteration of the slowest rank, as a (repeats, candidates, phases) CPU tensor.

    A candidate with `phases` > 1 is called with no arguments and returns an iterator of `phases` steps
    (e.g. dispatch then combine); each step is timed on its own, with the device synchronised in between.
    """
    for candidate in candidates:
        for _ in range(warmup):
            _call(candidate, phases, clock)
    samples = torch.zeros(repeats, len(candidates), phases, dtype=torch.float64)
    for repeat in range(repeats):
        # Alternate the order: whichever runs first after the barrier must not always be the same one.
        order = list(enumerate(candidates))
        for index, candidate in order if repeat % 2 == 0 else order[::-1]:
            clock.barrier()
            samples[repeat, index] = torch.tensor(_time_iterations(candidate, phases, iters, clock)) / iters
    slowest = samples.to(clock.device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return slowest.cpu()


def _call(candidate: Callable[[], object], phases: int, clock: DeviceClock) -> None:
    if phases == 1:
        candidate()
    else:
        for _ in candidate():  # type: ignore[attr-defined]
            pass
    clock.synchronize()


def _time_iterations(
    candidate: Callable[[], object], phases: int, iters: int, clock: DeviceClock
) -> list[float]:
    """Seconds of `iters` iterations, per phase."""
    if phases == 1:
        # Back to back, one synchronisation at the end, as nccl-tests does: no per-iteration sync latency.
        start = time.perf_counter()
        for _ in range(iters):
            candidate()
        clock.synchronize()
        return [time.perf_counter() - start]
    totals = [0.0] * phases
    for _ in range(iters):
        steps = candidate()
        for phase in range(phases):
            start = time.perf_counter()
            next(steps)  # type: ignore[call-overload]
            clock.synchronize()
            totals[phase] += time.perf_counter() - start
    return totals
