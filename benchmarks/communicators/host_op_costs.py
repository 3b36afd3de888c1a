"""What each host operation of a small MoE round trip costs on this machine, and where the communicator's
uneven dispatch and combine spend their host time.

Issue 21 asks the uneven round trip to cost at most 1.5x the equal one at 64 / 512 tokens, where every way
costs about its host time (bench_gatherv_strategies.py prints both). This script prices the pieces those
ways are made of, on each rank, by the host clock over back-to-back calls (the device queue left to run
behind): tensor allocation and views, the copy kernels, the peer workspace's views and barrier, NCCL's
calls; then the communicator's calls against the ways they pick, and a cProfile of the communicator's
uneven dispatch and combine on the shorter rank (the one that sets the pace).

    python benchmarks/communicators/host_op_costs.py --device cuda --world-size 2 --tokens 64
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

HIDDEN = 4096
TOPK = 8
CALLS = 400
EQ_DISPATCH, UN_DISPATCH = "equal dispatch (communicator)", "uneven dispatch (communicator)"

# Run as `python benchmarks/<group>/<script>.py`: the checkout's root, for benchmarks/forked_ranks.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.forked_ranks import join_group, run_rank_script  # noqa: E402


def host_us(call, calls: int = CALLS) -> float:
    """Host time per call over `calls` back-to-back calls, after a warm-up."""
    for _ in range(20):
        call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e6


def align_as_bytes(tensors, split, new_rows, flat_bytes) -> list[torch.Tensor]:
    longest = max(split.sizes)
    if split.own == longest:
        return tensors
    blocks = [new_rows(rows, longest) for rows in tensors]
    place = slice(longest - split.own, longest) if split.rank == 0 else slice(0, split.own)
    torch._foreach_copy_([flat_bytes(block[place]) for block in blocks], [flat_bytes(t) for t in tensors])
    return blocks


def align_per_tensor(tensors, split, new_rows) -> list[torch.Tensor]:
    longest = max(split.sizes)
    if split.own == longest:
        return tensors
    blocks = [new_rows(rows, longest) for rows in tensors]
    place = slice(longest - split.own, longest) if split.rank == 0 else slice(0, split.own)
    for block, rows in zip(blocks, tensors, strict=True):
        block[place].copy_(rows)
    return blocks


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, tokens: int) -> None:
    from communicators import create_communicator
    from communicators.tensor_layout import new_rows, row_split
    from communicators.uneven_rows import LIST_GATHER_WAYS, SCATTER_WAYS, _aligned_blocks, _flat_bytes
    from harness.bench.collectives import mild_shares
    from harness.bench.dispatch_combine import token_inputs
    from harness.bench.timing import DeviceClock

    device = join_group(rank, world_size, device_type, store_path)
    clock = DeviceClock(device)
    comm = create_communicator(device)
    calls = comm.group_calls
    equal, mild = [tokens] * world_size, mild_shares(tokens * world_size, world_size)
    split = row_split(tuple(mild), world_size, rank)
    eq_inputs = token_inputs(tokens, HIDDEN, TOPK, rank, torch.bfloat16, device)
    un_inputs = token_inputs(mild[rank], HIDDEN, TOPK, rank, torch.bfloat16, device)
    hidden = un_inputs[0]
    gathered = torch.ones(sum(mild), HIDDEN, dtype=torch.bfloat16, device=device)
    peer = comm.group_calls.peer_workspace.usable(device)
    longest = max(mild)
    blocks = [new_rows(t, longest) for t in un_inputs]
    outs = [new_rows(t, 2 * longest) for t in un_inputs]
    eq_outs = [new_rows(t, tokens * world_size) for t in eq_inputs]
    small = torch.ones(tokens, HIDDEN, dtype=torch.bfloat16, device=device)
    small_out = torch.empty_like(small)

    ops = {
        "new_empty (rows of hidden)": lambda: new_rows(hidden, longest),
        "slice": lambda: hidden[1:],
        "view as flat bytes": lambda: _flat_bytes(hidden),
        "copy_ (one tensor)": lambda: small_out.copy_(small),
        "_foreach_copy_ (3 byte views)": lambda: torch._foreach_copy_(
            [_flat_bytes(b[: split.own]) for b in blocks], [_flat_bytes(t) for t in un_inputs]
        ),
        "torch.add": lambda: torch.add(small, small),
        # The shorter rank's copy into blocks of the longer share's length (uneven_rows._aligned_blocks):
        # as the tensors are (now), as byte views (one kernel), one copy_ per tensor.
        "align: _foreach_copy_ of the tensors": lambda: _aligned_blocks(un_inputs, split),
        "align: _foreach_copy_ as bytes": lambda: align_as_bytes(un_inputs, split, new_rows, _flat_bytes),
        "align: copy_ per tensor": lambda: align_per_tensor(un_inputs, split, new_rows),
        "all_gather (hidden)": lambda: calls.all_gather(outs[0], blocks[0]),
        "all_gather_coalesced (3, equal)": lambda: calls.all_gather_coalesced(eq_outs, eq_inputs),
        "all_gather_coalesced (3, padded)": lambda: calls.all_gather_coalesced(outs, blocks),
        "reduce_scatter (gathered)": lambda: calls.reduce_scatter(small_out[: sum(mild) // 2], gathered),
    }
    if device.type == "cuda":
        ops["is_current_stream_capturing"] = torch.cuda.is_current_stream_capturing
    if peer:
        handle, spaces = calls.peer_workspace.spaces(gathered.numel() * 2, device)
        ops["workspace get_buffer"] = lambda: handle.get_buffer(rank, list(gathered.shape), torch.bfloat16)
        ops["workspace barrier"] = lambda: handle.barrier(channel=0)
    sweeps = {
        "equal dispatch (communicator)": lambda: comm.dispatch(*eq_inputs, equal),
        "uneven dispatch (communicator)": lambda: comm.dispatch(*un_inputs, mild),
        "uneven dispatch (padded_window, direct)": lambda: LIST_GATHER_WAYS["padded_window"](
            un_inputs, split, calls
        ),
        "equal combine (communicator)": lambda: comm.combine(gathered[: tokens * world_size], equal),
        "uneven combine (communicator)": lambda: comm.combine(gathered, mild),
    }
    if peer:
        sweeps["uneven dispatch (peer_push, direct)"] = lambda: LIST_GATHER_WAYS["peer_push"](
            un_inputs, split, calls
        )
        sweeps["uneven combine (peer_add, direct)"] = lambda: SCATTER_WAYS["peer_add"](gathered, split, calls)
    for table in (ops, sweeps):
        figures = {}
        for name, call in table.items():
            clock.barrier()
            figures[name] = host_us(call)
            clock.barrier()
        for name, us in figures.items():
            print(f"rank {rank} {tokens} tokens {name:<45} host {us:8.2f} us per call", flush=True)
    # The uneven round trip layer by layer, timed like the benches (device clock, interleaved): where the
    # communicator's own layers cost time over the ways they call.
    if peer:
        from harness.bench.timing import time_interleaved

        rows_calls = {
            "equal round trip (communicator)": lambda: comm.combine(
                comm.dispatch(*eq_inputs, equal)[0], equal
            ),
            "uneven round trip (communicator)": lambda: comm.combine(
                comm.dispatch(*un_inputs, mild)[0], mild
            ),
            "uneven round trip (all_gatherv + reduce_scatterv)": lambda: comm.reduce_scatterv(
                comm.all_gatherv(un_inputs, dim=0, sizes=mild)[0], dim=0, sizes=mild
            ),
            "uneven round trip (the communicator's row primitives)": lambda: comm._reduce_scatterv_rows(
                comm._gather_row_list(un_inputs, split)[0], split
            ),
            "uneven round trip (the ways: peer_push + peer_add)": lambda: SCATTER_WAYS["peer_add"](
                LIST_GATHER_WAYS["peer_push"](un_inputs, split, calls)[0], split, calls
            ),
        }
        times = time_interleaved(clock, list(rows_calls.values()), warmup=5, iters=50, repeats=5)
        for name, (seconds,) in zip(rows_calls, times, strict=True):
            if rank == 0:
                print(f"{tokens} tokens {name:<58} {seconds * 1e6:8.1f} us (device clock)", flush=True)
    shorter = min(range(world_size), key=lambda r: mild[r])
    for name in ("uneven dispatch (communicator)", "uneven combine (communicator)"):
        clock.barrier()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(CALLS):
            sweeps[name]()
        profiler.disable()
        clock.barrier()
        if rank == shorter:
            print(f"rank {rank} {tokens} tokens: cProfile of {CALLS} x {name}", flush=True)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def main() -> None:
    run_rank_script(__doc__, rank_main, "tokens", 64)


if __name__ == "__main__":
    main()
