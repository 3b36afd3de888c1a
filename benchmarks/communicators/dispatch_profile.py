"""Where a small MoE round trip spends its time: the profiler's view of equal and uneven dispatch + combine.

Issue 21 asks the uneven round trip to cost at most 1.5x the equal one at 64 / 512 tokens. At these sizes
every way costs about its host time (bench_gatherv_strategies.py prints both), so this script shows, per
scheme, what the host calls and what the device runs: the profiler's operator table (host time per op and
device time per kernel, the NCCL kernels' and barriers' time including their wait for the peer), and the
device's busy time against the round trip's wall time on each rank.

    python benchmarks/communicators/dispatch_profile.py --device cuda --world-size 2 --tokens 64
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

HIDDEN = 4096
TOPK = 8
ITERS = 30

# Run as `python benchmarks/<group>/<script>.py`: the checkout's root, for benchmarks/forked_ranks.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.forked_ranks import join_group, run_rank_script  # noqa: E402


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, tokens: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    from communicators import create_communicator
    from communicators.tensor_layout import row_split
    from communicators.uneven_rows import LIST_GATHER_WAYS, SCATTER_WAYS
    from harness.bench.collectives import mild_shares
    from harness.bench.dispatch_combine import token_inputs
    from harness.bench.timing import DeviceClock

    device = join_group(rank, world_size, device_type, store_path)
    clock = DeviceClock(device)
    comm = create_communicator(device)
    equal, mild = [tokens] * world_size, mild_shares(tokens * world_size, world_size)
    split = row_split(tuple(mild), world_size, rank)
    eq_inputs = token_inputs(tokens, HIDDEN, TOPK, rank, torch.bfloat16, device)
    un_inputs = token_inputs(mild[rank], HIDDEN, TOPK, rank, torch.bfloat16, device)
    schemes = {
        "equal (communicator)": lambda: comm.combine(comm.dispatch(*eq_inputs, equal)[0], equal),
        "uneven (communicator)": lambda: comm.combine(comm.dispatch(*un_inputs, mild)[0], mild),
    }
    if comm.group_calls.peer_workspace.usable(device):
        schemes["uneven (padded_window + peer_add, direct)"] = lambda: SCATTER_WAYS["peer_add"](
            LIST_GATHER_WAYS["padded_window"](un_inputs, split, comm.group_calls)[0], split, comm.group_calls
        )
    for name, round_trip in schemes.items():
        for _ in range(10):
            round_trip()
        clock.barrier()
        started = time.perf_counter()
        for _ in range(ITERS):
            round_trip()
        issued = time.perf_counter()
        clock.barrier()
        finished = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(ITERS):
                round_trip()
            clock.barrier()
        events = prof.key_averages()
        device_us = sum(e.self_device_time_total for e in events) / ITERS
        print(
            f"rank {rank} {name}: {tokens} tokens, wall {(finished - started) / ITERS * 1e6:.1f} us per "
            f"round trip, host issue {(issued - started) / ITERS * 1e6:.1f} us, device busy "
            f"{device_us:.1f} us (kernels and copies, waits included)",
            flush=True,
        )
        if rank == 0 or "uneven" in name:
            table = events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60)
            print(f"rank {rank} {name}: the profiler's operators\n{table}", flush=True)
        clock.barrier()


def main() -> None:
    run_rank_script(__doc__, rank_main, "tokens", 64)


if __name__ == "__main__":
    main()
