"""MoE dispatch on NCCL: how its list of gathers goes out, two ways side by side, at equal and uneven sizes.

With equal sizes on every rank, the base communicator gathers dispatch's hidden states, router weights and
expert ids with one coalesced all-gather (`GroupCalls.all_gather_coalesced`); before, each was its own
collective. This times both in one run, interleaved (harness.bench.timing): dispatch alone and the round
trip with combine, hidden 4096, top-k 8, bf16, at 64 / 512 / 4096 tokens per rank. Every result is checked
against the other way first. At uneven sizes, per tensor (NCCL's way today) against the CPU
communicator's packing of the small tensors into one byte buffer.

    python benchmarks/bench_dispatch_grouping.py --device cuda --world-size 2
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from forked_ranks import rank_arguments, run_forked_ranks

TOKENS = (64, 512, 4096)
HIDDEN, TOPK = 4096, 8


def time_tokens(comm, tokens: int, clock, repeats: int, *, uneven: bool) -> list[float]:
    """Microseconds of dispatch A / B, then round trip A / B.

    Equal sizes: A gathers the list as one coalesced call, B one collective per tensor. Uneven sizes (rank r
    has tokens + r * tokens / 4): A one collective per tensor (NCCL's uneven all_gather is itself a group
    of broadcasts), B the hidden states alone and the weights and ids packed into one byte buffer (what the
    CPU communicator does: one collective fewer, two pack/unpack copies more).
    """
    from harness.bench.timing import time_interleaved

    calls, device, n, rank = comm._calls, comm.device, comm.world_size, comm.rank
    coalesces = calls._coalesces
    sizes = [tokens + r * (tokens // 4) for r in range(n)] if uneven else [tokens] * n
    hidden = torch.randn(sizes[rank], HIDDEN, device=device).to(torch.bfloat16)
    weights = torch.rand(sizes[rank], TOPK, device=device)
    ids = torch.randint(0, 64, (sizes[rank], TOPK), device=device)

    def dispatch(first: bool) -> tuple:
        if uneven:
            comm.packs_row_lists = not first
        else:
            calls._coalesces = first and coalesces
        return comm.dispatch(hidden, weights, ids, sizes)

    def round_trip(first: bool) -> torch.Tensor:
        return comm.combine(dispatch(first)[0], sizes)

    for got, want in zip(dispatch(True), dispatch(False), strict=True):
        assert torch.equal(got, want), f"rank {rank}: the two dispatches differ at {tokens} tokens"
    candidates = [
        lambda: dispatch(True),
        lambda: dispatch(False),
        lambda: round_trip(True),
        lambda: round_trip(False),
    ]
    iters = max(10, min(200, 20480 // tokens))
    times = time_interleaved(clock, candidates, warmup=3, iters=iters, repeats=repeats)
    calls._coalesces, comm.packs_row_lists = coalesces, False
    return [seconds * 1e6 for (seconds,) in times]


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, repeats: int) -> None:
    import communicators
    from harness.bench.timing import DeviceClock

    if device_type == "cuda":
        torch.cuda.set_device(rank)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    backend = "nccl" if device_type == "cuda" else "gloo"
    store = dist.FileStore(store_path, world_size)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    comm = communicators.create_communicator(device)
    # The base's list path, also on gloo (where the coalesced call falls back to one gather per tensor).
    comm.packs_row_lists = False
    clock = DeviceClock(device)
    if rank == 0:
        print(f"coalesced gathers on this backend: {comm._calls._coalesces}")
    for uneven, first, second in ((False, "grouped", "per tensor"), (True, "per tensor", "packed")):
        if rank == 0:
            print("uneven sizes" if uneven else "equal sizes")
            header = ("tokens", f"dispatch {first}", second, f"round trip {first}", second)
            print("".join(f"{h:>22}" for h in header) + "  (us)")
        for tokens in TOKENS:
            us = time_tokens(comm, tokens, clock, repeats, uneven=uneven)
            if rank == 0:
                print(f"{tokens:>22}" + "".join(f"{t:>22.1f}" for t in us), flush=True)
    dist.barrier()


def main() -> None:
    parser = rank_arguments(__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    raise SystemExit(
        run_forked_ranks(
            args.world_size,
            lambda rank, store_path: rank_main(rank, args.world_size, args.device, store_path, args.repeats),
        )
    )


if __name__ == "__main__":
    main()
