"""Inside a rank: one sweep of message sizes for one collective, checked and timed.

For each size every rank builds a known input, runs the communicator's collective once and compares the
result with a reference it computes locally (every rank knows every rank's input: it is a formula of the
rank), then times the collective on buffers of the same size. Where torch.distributed has the same
collective, it is timed in alternation with the communicator's, doing the same job: in place where the
communicator works in place (all_reduce, broadcast), into a freshly allocated output where the communicator
returns a new tensor (all_gather, reduce_scatter: the allocation is part of the job, and on a host-bound
accelerator call it alone is a few percent). The difference is the communicator's own overhead.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from communicators.torch_compat import all_gather_single, reduce_scatter_single
from harness.bench.bandwidth import algbw_gbps, busbw_gbps
from harness.bench.options import BenchOptions
from harness.bench.timing import DeviceClock, repeat_times

COMMUNICATOR = "communicator"
TORCH = "torch.distributed"


@dataclass
class CollectiveCase:
    """One collective at one size, ready to check and time."""

    op: str
    count: int  # elements moved, by nccl-tests' byte convention (the total for gathers and scatters)
    run_communicator: Callable[[], object]
    run_torch: Callable[[], object] | None
    check: Callable[[], bool]
    impl: str = COMMUNICATOR
    shares: list[int] | None = None  # the uneven collectives' elements per rank


def pattern(count: int, rank: int, dtype: torch.dtype, device: torch.device, start: int = 0) -> torch.Tensor:
    """Rank `rank`'s input: small integers, so that sums over up to 64 ranks are exact even in bfloat16."""
    index = torch.arange(start, start + count, device=device)
    return ((index % 5) + rank + 1).to(dtype)


def uneven_shares(count: int, world_size: int) -> list[int]:
    """`count` split in proportion to rank + 1, the last rank taking what rounding leaves."""
    return shares_by_weight(count, [rank + 1 for rank in range(world_size)])


def mild_shares(count: int, world_size: int) -> list[int]:
    """`count` split in proportion to 2(n - 1) + rank: max/mean is 1.2 at every world size above 1."""
    return shares_by_weight(count, [2 * (world_size - 1) + rank or 1 for rank in range(world_size)])


# The uneven collectives run at each of these share patterns; a row names its pattern under "shares".
SHARE_PATTERNS: dict[str, Callable[[int, int], list[int]]] = {"rank+1": uneven_shares, "mild": mild_shares}
UNEVEN_OPS = ("all_gatherv", "reduce_scatterv")


def shares_by_weight(count: int, weights: list[int]) -> list[int]:
    """`count` split in proportion to `weights`, the last rank taking what rounding leaves."""
    total = sum(weights)
    shares = [count * weight // total for weight in weights]
    shares[-1] += count - sum(shares)
    return shares


def build_case(
    op: str, nbytes: int, communicator: Any, dtype: torch.dtype, shares: str = "rank+1"
) -> CollectiveCase:
    """The case for `op` at (about) `nbytes`: the element count is rounded down to a multiple of the ranks.

    The uneven collectives split the count by the share pattern `shares` (a key of SHARE_PATTERNS)."""
    rank, n, device = communicator.rank, communicator.world_size, communicator.device
    count = max(n, nbytes // dtype.itemsize // n * n)
    share = count // n
    own = pattern(count, rank, dtype, device)
    expected_sum = sum(pattern(count, r, dtype, device) for r in range(n))

    def equal(actual: torch.Tensor | None, expected: torch.Tensor) -> bool:
        return actual is not None and actual.shape == expected.shape and bool(torch.equal(actual, expected))

    if op == "all_reduce":
        timed = torch.zeros(count, dtype=dtype, device=device)
        return CollectiveCase(
            op,
            count,
            lambda: communicator.all_reduce(timed),
            lambda: dist.all_reduce(timed),
            lambda: equal(communicator.all_reduce(own.clone()), expected_sum),
        )
    if op == "all_gather":
        local = pattern(share, rank, dtype, device)
        expected = torch.cat([pattern(share, r, dtype, device) for r in range(n)])
        return CollectiveCase(
            op,
            count,
            lambda: communicator.all_gather(local, dim=0),
            lambda: all_gather_single(torch.empty(count, dtype=dtype, device=device), local),
            lambda: equal(communicator.all_gather(local, dim=0), expected),
        )
    if op == "reduce_scatter":
        expected = expected_sum[rank * share : (rank + 1) * share]
        return CollectiveCase(
            op,
            count,
            lambda: communicator.reduce_scatter(own, dim=0),
            lambda: reduce_scatter_single(torch.empty(share, dtype=dtype, device=device), own),
            lambda: equal(communicator.reduce_scatter(own.clone(), dim=0), expected),
        )
    if op == "all_to_all":
        exchanged = torch.empty(count, dtype=dtype, device=device)
        # Chunk r of rank i's input arrives as chunk i on rank r.
        expected = torch.cat([pattern(share, i, dtype, device, start=rank * share) for i in range(n)])
        method = getattr(communicator, "all_to_all", None)
        if method is None:
            # The communicator has no all_to_all: the row is torch.distributed's own, labelled as such.
            def run() -> torch.Tensor:
                out = torch.empty_like(own)
                dist.all_to_all_single(out, own)
                return out

            return CollectiveCase(op, count, run, None, lambda: equal(run(), expected), impl=TORCH)
        return CollectiveCase(
            op,
            count,
            lambda: method(own),
            lambda: dist.all_to_all_single(exchanged, own),
            lambda: equal(method(own.clone()), expected),
        )
    if op == "broadcast":
        root_input = pattern(count, 0, dtype, device)
        timed = root_input.clone()
        return CollectiveCase(
            op,
            count,
            lambda: communicator.broadcast(timed, src=0),
            lambda: dist.broadcast(timed, src=0),
            lambda: equal(communicator.broadcast(root_input.clone() * (rank == 0), src=0), root_input),
        )
    shares = SHARE_PATTERNS[shares](count, n)
    offsets = [sum(shares[:r]) for r in range(n)]
    if op == "all_gatherv":
        local = pattern(shares[rank], rank, dtype, device)
        expected = torch.cat([pattern(shares[r], r, dtype, device) for r in range(n)])
        return CollectiveCase(
            op,
            count,
            lambda: communicator.all_gatherv(local, dim=0, sizes=shares),
            None,
            lambda: equal(communicator.all_gatherv(local, dim=0, sizes=shares), expected),
            shares=shares,
        )
    if op == "reduce_scatterv":
        expected = expected_sum[offsets[rank] : offsets[rank] + shares[rank]]
        return CollectiveCase(
            op,
            count,
            lambda: communicator.reduce_scatterv(own, dim=0, sizes=shares),
            None,
            lambda: equal(communicator.reduce_scatterv(own.clone(), dim=0, sizes=shares), expected),
            shares=shares,
        )
    raise ValueError(f"no bench case for collective {op!r}")


def sweep_collective(
    op: str, communicator: Any, options: BenchOptions, clock: DeviceClock, announce: Callable[[str], None]
) -> Iterator[dict[str, Any]]:
    """Rows for `op` at every size of `options`: the collective's, torch's and the overhead between them."""
    dtype = getattr(torch, options.dtype)
    patterns = list(SHARE_PATTERNS) if op in UNEVEN_OPS else [None]
    for nbytes in options.sizes:
        for pattern in patterns:
            yield from _measure_case(op, nbytes, pattern, communicator, options, clock, announce, dtype)


def _measure_case(
    op: str,
    nbytes: int,
    pattern: str | None,
    communicator: Any,
    options: BenchOptions,
    clock: DeviceClock,
    announce: Callable[[str], None],
    dtype: torch.dtype,
) -> Iterator[dict[str, Any]]:
    if pattern is None:
        announce(f"{op} {nbytes} bytes")
        case = build_case(op, nbytes, communicator, dtype)
    else:
        announce(f"{op} {nbytes} bytes, shares {pattern}")
        case = build_case(op, nbytes, communicator, dtype, shares=pattern)
    incorrect = ranks_where_false(case.check(), communicator)
    candidates = [case.run_communicator]
    if options.overhead and case.run_torch is not None:
        candidates.append(case.run_torch)
    iters = options.iterations_for(nbytes)
    repeats = options.repeats_for(nbytes, with_overhead=len(candidates) == 2)
    per_repeat = repeat_times(clock, candidates, warmup=options.warmup, iters=iters, repeats=repeats)
    times = [statistics.median(seconds) for seconds in per_repeat]
    best = [min(seconds) for seconds in per_repeat]
    moved = case.count * dtype.itemsize
    common = {
        "bytes": moved,
        "count": case.count,
        "dtype": options.dtype,
        "world_size": communicator.world_size,
        "device": options.device,
        "iters": iters,
        "repeats": repeats,
    }
    n = communicator.world_size
    uneven = {}
    if case.shares is not None:
        # So that a reader (and a floor) can judge the row against its bound, even busbw x mean/max.
        uneven = {
            "shares": pattern,
            "share_counts": case.shares,
            "max_over_mean": max(case.shares) * n / sum(case.shares) if sum(case.shares) else 1.0,
        }
    yield {
        "op": op,
        "impl": case.impl,
        **common,
        **uneven,
        **_figures(op, n, moved, times[0]),
        "repeats_us": repeats_us(per_repeat[0]),
        "correct": not incorrect,
        "incorrect_ranks": incorrect,
    }
    if len(times) == 2:
        comm_s, torch_s = times
        # The baseline of the overhead row below: plots, tables and floors leave it out.
        yield {
            "op": op,
            "impl": TORCH,
            **common,
            **_figures(op, n, moved, torch_s),
            "repeats_us": repeats_us(per_repeat[1]),
            "correct": True,
            "incorrect_ranks": [],
            "baseline": True,
        }
        yield {
            "op": "overhead",
            "collective": op,
            **common,
            "communicator_us": comm_s * 1e6,
            "torch_us": torch_s * 1e6,
            "communicator_best_us": best[0] * 1e6,
            "torch_best_us": best[1] * 1e6,
            # Judged on each one's best repeat: below a few MiB a GPU collective is host-bound, where
            # the scheduler and NCCL's own threads add 10-30 % to whole repeats at random (medians of
            # the same code measured -35 % and +27 % at one size in one run), and noise only ever adds
            # time; the least time is each call's own cost, as timeit reports it.
            "overhead_pct": _percent_over(best[0], best[1]),
            "overhead_median_pct": _percent_over(comm_s, torch_s),
        }


def ranks_where_false(flag: bool, communicator: Any) -> list[int]:
    """The ranks whose `flag` is False (every rank learns all of them)."""
    flags = torch.zeros(communicator.world_size, dtype=torch.int32, device=communicator.device)
    flags[communicator.rank] = 0 if flag else 1
    dist.all_reduce(flags)
    return [rank for rank, bad in enumerate(flags.tolist()) if bad]


def repeats_us(seconds: list[float]) -> list[float]:
    """A row's "repeats_us": each repeat's time per iteration in microseconds, to the nanosecond."""
    return [round(each * 1e6, 3) for each in seconds]


def _percent_over(seconds: float, reference_seconds: float) -> float:
    return (seconds / reference_seconds - 1.0) * 100.0 if reference_seconds > 0 else 0.0


def _figures(op: str, world_size: int, nbytes: int, seconds: float) -> dict[str, float]:
    return {
        "time_us": seconds * 1e6,
        "algbw_gbps": algbw_gbps(nbytes, seconds),
        "busbw_gbps": busbw_gbps(op, world_size, nbytes, seconds),
    }
