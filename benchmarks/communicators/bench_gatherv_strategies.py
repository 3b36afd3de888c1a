"""Uneven all-gather and reduce-scatter every way (communicators/uneven_rows.py), side by side, per size.

Issue 21: the NCCL communicator's all_gatherv reached 106 GB/s busbw at 1 GiB on 2 x H200 against 269 for
the equal all_gather. With shares s, the best an uneven collective can do is about the even busbw x
mean(s)/max(s) (the busiest rank moves max(s) where an even one moves mean(s)). This script times each way
of `uneven_rows.GATHER_WAYS` / `SCATTER_WAYS` and the communicator itself at two share patterns, the
bench's (in proportion to rank + 1; max/mean 1.33 at ws2, 1.6 at ws4) and a mild one (max/mean 1.2), and
the equal collective at the same total, which gives the bound. Every result is checked on the device
against the expected tensor before timing; times are the slowest rank's, median of repeats, back to back.

Then MoE dispatch (hidden states bf16, weights f32, ids i64 as one list) and combine at 64 / 512 / 4096
tokens per rank: equal sizes against the mild pattern with the same total, each way of gathering the list.

    python benchmarks/communicators/bench_gatherv_strategies.py --device cuda --world-size 2
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

SIZES_KIB = (256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20)
CPU_SIZES_KIB = (256, 1 << 10, 4 << 10)
TOKENS = (64, 512, 4096)
HIDDEN = 4096
TOPK = 8
# Ways to leave out (UNEVEN_SKIP=window_grouped,...), e.g. where a probe found one unsupported;
# "collectives" leaves out the whole sweep of single collectives (dispatch and combine only).
SKIPPED = frozenset(filter(None, os.environ.get("UNEVEN_SKIP", "").split(",")))

# Run as `python benchmarks/<group>/<script>.py`: the checkout's root, for benchmarks/forked_ranks.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.forked_ranks import join_group, run_rank_script  # noqa: E402


def shares_of(pattern: str, count: int, world_size: int) -> list[int]:
    from harness.bench.collectives import mild_shares, uneven_shares

    if pattern == "equal":
        return [count // world_size] * world_size
    return uneven_shares(count, world_size) if pattern == "rank+1" else mild_shares(count, world_size)


def n_cpu(device: torch.device) -> bool:
    """Whether the ranks run on the CPU, where the communicator's reduce_scatterv sums in place."""
    return device.type == "cpu"


def usable_ways(comm, table: dict) -> list[str]:
    """The ways of `table` that run on this communicator's group."""
    from communicators.uneven_rows import ways_that_run

    return ways_that_run(table, comm.world_size, comm.group_calls.peer_workspace.usable(comm.device))


def gather_calls(comm, rows: torch.Tensor, sizes: list[int], ways: list[str]) -> dict[str, object]:
    from communicators.tensor_layout import row_split
    from communicators.uneven_rows import GATHER_WAYS

    split = row_split(tuple(sizes), comm.world_size, comm.rank)
    calls = {name: (lambda way=GATHER_WAYS[name]: way(rows, split, comm.group_calls)) for name in ways}
    calls["communicator"] = lambda: comm.all_gatherv(rows, dim=0, sizes=sizes)
    return calls


def scatter_calls(comm, full: torch.Tensor, sizes: list[int], ways: list[str]) -> dict[str, object]:
    from communicators.tensor_layout import row_split
    from communicators.uneven_rows import SCATTER_WAYS

    split = row_split(tuple(sizes), comm.world_size, comm.rank)
    calls = {name: (lambda way=SCATTER_WAYS[name]: way(full, split, comm.group_calls)) for name in ways}
    calls["communicator"] = lambda: comm.reduce_scatterv(full, dim=0, sizes=sizes)
    return calls


def sweep(comm, clock, device, repeats: int) -> None:
    from communicators.uneven_rows import GATHER_WAYS, SCATTER_WAYS
    from harness.bench.timing import time_interleaved

    rank, n = comm.rank, comm.world_size

    def runnable(table: dict) -> list[str]:
        ways = [w for w in usable_ways(comm, table) if w not in SKIPPED]
        if device.type == "cpu" and "grouped" in ways:
            ways.remove("grouped")  # gloo's list collectives take equal sizes only
        return ways

    gather_ways, scatter_ways = runnable(GATHER_WAYS), runnable(SCATTER_WAYS)
    for collective in ("all_gatherv", "reduce_scatterv"):
        for kib in SIZES_KIB if device.type == "cuda" else CPU_SIZES_KIB:
            count = kib * 1024 // 2 // n * n
            even_s = None
            for pattern in ("equal", "rank+1", "mild"):
                sizes = shares_of(pattern, count, n)
                if collective == "all_gatherv":
                    rows = torch.full((sizes[rank],), float(rank + 1), dtype=torch.bfloat16, device=device)
                    expected = torch.cat(
                        [
                            torch.full((s,), float(r + 1), dtype=torch.bfloat16, device=device)
                            for r, s in enumerate(sizes)
                        ]
                    )
                    calls = gather_calls(comm, rows, sizes, [] if pattern == "equal" else gather_ways)
                else:
                    full = torch.full((count,), float(rank + 1), dtype=torch.bfloat16, device=device)
                    expected = torch.full(
                        (sizes[rank],), float(n * (n + 1) // 2), dtype=torch.bfloat16, device=device
                    )
                    calls = scatter_calls(comm, full, sizes, [] if pattern == "equal" else scatter_ways)
                for name, call in calls.items():
                    result = call()
                    assert torch.equal(result, expected), (
                        f"rank {rank}: {collective} {name} wrong at {kib} KiB {pattern}"
                    )
                    if collective == "reduce_scatterv" and not (name == "communicator" and n_cpu(device)):
                        assert bool((full == rank + 1).all()), f"rank {rank}: {name} changed its input"
                iters = max(5, min(200, (1 << 20) // kib))
                times = time_interleaved(clock, list(calls.values()), warmup=3, iters=iters, repeats=repeats)
                if pattern == "equal":
                    even_s = times[0][0]
                    continue
                if rank == 0:
                    nbytes = count * 2
                    mean_over_max = (sum(sizes) / n) / max(sizes)
                    bound = nbytes * (n - 1) / n / (even_s / mean_over_max) / 1e9
                    cells = "  ".join(
                        f"{name}={seconds * 1e6:.1f}us/{nbytes * (n - 1) / n / seconds / 1e9:.1f}"
                        for name, (seconds,) in zip(calls, times, strict=True)
                    )
                    even_busbw = nbytes * (n - 1) / n / even_s / 1e9
                    size = f"{kib // 1024}MiB" if kib >= 1024 else f"{kib}KiB"
                    print(
                        f"{collective} ws{n} {size} "
                        f"{pattern} even={even_s * 1e6:.1f}us/{even_busbw:.1f} bound={bound:.1f} "
                        f"85%={0.85 * bound:.1f} | {cells}",
                        flush=True,
                    )


def dispatch_sweep(comm, clock, device, repeats: int) -> None:
    import time

    from communicators.uneven_rows import SCATTER_WAYS
    from harness.bench.collectives import mild_shares
    from harness.bench.timing import time_interleaved

    rank, n = comm.rank, comm.world_size
    scatter_ways = [w for w in usable_ways(comm, SCATTER_WAYS) if w != "padded"]
    if device.type == "cpu":
        scatter_ways.remove("grouped")
    for tokens in TOKENS if device.type == "cuda" else TOKENS[:2]:
        hidden = HIDDEN if device.type == "cuda" else 256
        mild = mild_shares(tokens * n, n)
        calls = dispatch_calls(comm, device, tokens, hidden, mild, scatter_ways)
        times = time_interleaved(clock, list(calls.values()), warmup=3, iters=50, repeats=repeats)
        # Host time per call: what the host spends issuing it, with the device queue left to run behind.
        # Where it is close to the call's time, the call is bound by the host (launches, Python), not by
        # the link, and fewer operations, not faster transfers, make it faster.
        host_us = {}
        for name, call in calls.items():
            clock.barrier()
            started = time.perf_counter()
            for _ in range(50):
                call()
            host_us[name] = (time.perf_counter() - started) / 50 * 1e6
        clock.barrier()
        if rank == 0:
            print(f"dispatch ws{n} {tokens} tokens (mild sizes {mild}):", flush=True)
            for name, (seconds,) in zip(calls, times, strict=True):
                print(f"    {name:<58} {seconds * 1e6:9.1f} us   host {host_us[name]:7.1f} us", flush=True)


def dispatch_calls(
    comm, device: torch.device, tokens: int, hidden: int, mild: list[int], scatter_ways: list[str]
) -> dict[str, object]:
    """Dispatch, combine and round trips at equal and mildly uneven sizes of one total, checked."""
    from communicators.tensor_layout import row_split
    from communicators.uneven_rows import LIST_GATHER_WAYS, SCATTER_WAYS
    from harness.bench.dispatch_combine import token_inputs

    rank, n = comm.rank, comm.world_size
    equal = [tokens] * n
    split = row_split(tuple(mild), n, rank)
    eq_inputs = token_inputs(tokens, hidden, TOPK, rank, torch.bfloat16, device)
    un_inputs = token_inputs(mild[rank], hidden, TOPK, rank, torch.bfloat16, device)
    everyone = [token_inputs(s, hidden, TOPK, r, torch.bfloat16, device) for r, s in enumerate(mild)]
    expected = [torch.cat([each[i] for each in everyone]) for i in range(3)]
    gathered_hidden = expected[0]
    combine_name = "grouped" if device.type == "cuda" else "point_to_point"
    list_ways = usable_ways(comm, LIST_GATHER_WAYS)
    calls = {
        "equal dispatch": lambda: comm.dispatch(*eq_inputs, equal),
        "uneven dispatch (communicator)": lambda: comm.dispatch(*un_inputs, mild),
    }
    for way in list_ways:
        calls[f"uneven dispatch (list {way})"] = lambda way=way: LIST_GATHER_WAYS[way](
            un_inputs, split, comm.group_calls
        )
    calls["equal combine"] = lambda: comm.combine(gathered_hidden, equal)
    calls["uneven combine (communicator)"] = lambda: comm.combine(gathered_hidden, mild)
    for way in scatter_ways:
        calls[f"uneven combine ({way})"] = lambda way=way: SCATTER_WAYS[way](
            gathered_hidden, split, comm.group_calls
        )
    calls["equal round trip"] = lambda: comm.combine(comm.dispatch(*eq_inputs, equal)[0], equal)
    calls["uneven round trip (communicator)"] = lambda: comm.combine(comm.dispatch(*un_inputs, mild)[0], mild)
    # Each list way with each combine that is a candidate at these sizes (and its namesake, if any).
    for way in list_ways:
        combines = [c for c in (way, combine_name, "padded_window", "peer_add") if c in scatter_ways]
        for combine in dict.fromkeys(combines):
            calls[f"uneven round trip (list {way} + {combine})"] = lambda way=way, combine=combine: (
                SCATTER_WAYS[combine](
                    LIST_GATHER_WAYS[way](un_inputs, split, comm.group_calls)[0], split, comm.group_calls
                )
            )
    for name in [name for name in calls if name.startswith("uneven dispatch")]:
        got = calls[name]()
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=False)), (
            f"{name} wrong at {tokens}"
        )
    return calls


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, repeats: int) -> None:
    from communicators import create_communicator
    from harness.bench.timing import DeviceClock

    device = join_group(rank, world_size, device_type, store_path)
    clock = DeviceClock(device)
    comm = create_communicator(device)
    if "collectives" not in SKIPPED:
        sweep(comm, clock, device, repeats)
    dispatch_sweep(comm, clock, device, repeats)
    clock.barrier()


def main() -> None:
    run_rank_script(__doc__, rank_main, "repeats", 5)


if __name__ == "__main__":
    main()
