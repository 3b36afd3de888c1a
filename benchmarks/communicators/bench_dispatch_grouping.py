"""MoE dispatch on NCCL: how its list of gathers goes out, two ways side by side, at equal and uneven sizes.

With equal sizes on every rank, the base communicator gathers dispatch's hidden states, router weights and
expert ids with one coalesced all-gather (`GroupCalls.all_gather_coalesced`); before, each was its own
collective. This times both in one run, interleaved (harness.bench.timing): dispatch alone and the round
trip with combine, hidden 4096, top-k 8, bf16, at 64 / 512 / 4096 tokens per rank. Every result is checked
against the other way first. At uneven sizes, per tensor (NCCL's way today) against the CPU
communicator's packing of the small tensors into one byte buffer.

    python benchmarks/communicators/bench_dispatch_grouping.py --device cuda --world-size 2
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

# Run as `python benchmarks/<group>/<script>.py`: the checkout's root, for benchmarks/forked_ranks.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.forked_ranks import join_group, run_rank_script  # noqa: E402

TOKENS = (64, 512, 4096)
HIDDEN, TOPK = 4096, 8


# The ways a dispatch's list of gathers can go out, per kind of sizes.
WAYS = {
    "equal": ("grouped", "per tensor"),
    "uneven": ("per tensor", "packed", "padded group"),
}


def padded_group_gather(comm, rows: list[torch.Tensor], sizes: list[int]) -> list[torch.Tensor]:
    """Every tensor padded to the longest share, all gathered as one coalesced call, then compacted."""
    n, longest = comm.world_size, max(sizes)
    padded = []
    for tensor in rows:
        if tensor.shape[0] < longest:
            grown = tensor.new_zeros((longest, *tensor.shape[1:]))
            grown[: tensor.shape[0]] = tensor
            tensor = grown
        padded.append(tensor)
    gathered = [tensor.new_empty((n * longest, *tensor.shape[1:])) for tensor in padded]
    comm.group_calls.all_gather_coalesced(gathered, padded)
    return [
        torch.cat([out.view(n, longest, *out.shape[1:])[r, : sizes[r]] for r in range(n)]) for out in gathered
    ]


def time_tokens(comm, tokens: int, clock, repeats: int, kind: str) -> list[float]:
    """Microseconds of dispatch each way of WAYS[kind], then of the round trip (with combine) each way.

    equal: "grouped" gathers the list as one coalesced call, "per tensor" one collective each. uneven (rank r
    has tokens + r * tokens / 4): "per tensor" (NCCL's uneven all_gather is itself a group of broadcasts),
    "packed" the hidden states alone and weights and ids in one byte buffer (the CPU communicator's way),
    "padded group" every tensor padded to the longest share and gathered as one coalesced call.
    """
    from harness.bench.timing import time_interleaved

    calls, device, n, rank = comm.group_calls, comm.device, comm.world_size, comm.rank
    coalesces = calls.coalesces
    sizes = [tokens + r * (tokens // 4) for r in range(n)] if kind == "uneven" else [tokens] * n
    hidden = torch.randn(sizes[rank], HIDDEN, device=device).to(torch.bfloat16)
    weights = torch.rand(sizes[rank], TOPK, device=device)
    ids = torch.randint(0, 64, (sizes[rank], TOPK), device=device)

    def dispatch(way: str) -> list[torch.Tensor]:
        if way == "padded group":
            return padded_group_gather(comm, [hidden, weights, ids], sizes)
        comm.packs_row_lists = way == "packed"
        calls.coalesces = way == "grouped" and coalesces
        return list(comm.dispatch(hidden, weights, ids, sizes))

    def round_trip(way: str) -> torch.Tensor:
        return comm.combine(dispatch(way)[0], sizes)

    ways = WAYS[kind]
    reference = dispatch(ways[0])
    for way in ways[1:]:
        for got, want in zip(dispatch(way), reference, strict=True):
            assert torch.equal(got, want), f"rank {rank}: dispatch {way!r} differs at {tokens} tokens"
    candidates = [lambda way=way: dispatch(way) for way in ways]
    candidates += [lambda way=way: round_trip(way) for way in ways]
    iters = max(10, min(200, 20480 // tokens))
    times = time_interleaved(clock, candidates, warmup=3, iters=iters, repeats=repeats)
    calls.coalesces, comm.packs_row_lists = coalesces, False
    return [seconds * 1e6 for (seconds,) in times]


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, repeats: int) -> None:
    import communicators
    from harness.bench.timing import DeviceClock

    device = join_group(rank, world_size, device_type, store_path)
    comm = communicators.create_communicator(device)
    # The base's list path, also on gloo (where the coalesced call falls back to one gather per tensor).
    comm.packs_row_lists = False
    clock = DeviceClock(device)
    if rank == 0:
        print(f"coalesced gathers on this backend: {comm.group_calls.coalesces}")
    for kind, ways in WAYS.items():
        if rank == 0:
            header = ["tokens"] + [f"dispatch {w}" for w in ways] + [f"round trip {w}" for w in ways]
            print(f"{kind} sizes")
            print("".join(f"{h:>24}" for h in header) + "  (us)")
        for tokens in TOKENS:
            us = time_tokens(comm, tokens, clock, repeats, kind)
            if rank == 0:
                print(f"{tokens:>24}" + "".join(f"{t:>24.1f}" for t in us), flush=True)
    dist.barrier()


def main() -> None:
    run_rank_script(__doc__, rank_main, "repeats", 7)


if __name__ == "__main__":
    main()
