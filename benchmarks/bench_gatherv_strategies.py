"""Uneven all-gather and reduce-scatter three ways each, side by side: which should the CUDA communicator use?

The base communicator gathers uneven rows with torch.distributed's list all_gather, which NCCL runs as one
broadcast per rank in a group; on 2 x H200 that reached 106 GB/s busbw at 1 GiB against 265 GB/s for the
equal all_gather. The candidates, at the bench's uneven shares (rank r holds a share in proportion to r + 1):

- `list`: `dist.all_gather(list(out.split(sizes)), rows)` (what the base does);
- `padded`: every rank's rows padded to the largest share, one equal all_gather, then the blocks compacted
  (`tensor_layout.all_gatherv_padded`, what the XPU communicator does);
- `p2p`: each rank sends its rows to every peer and receives theirs into place (`batch_isend_irecv`).

reduce_scatterv the same three ways: grouped reduces (`dist.reduce_scatter` of a list, the base), padded
to one equal reduce_scatter (`reduce_scatterv_padded`), and point to point (send each peer its block, sum
the peers' copies of this rank's block).

Each rank's result is checked against the expected concatenation before timing. Times are the slowest
rank's, median of repeats, back to back with one synchronize per repeat (harness.bench.timing).

    python benchmarks/bench_gatherv_strategies.py --device cuda --world-size 2
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from forked_ranks import join_group, run_rank_script

SIZES_MIB = (1, 4, 16, 64, 256, 1024)


def strategies(rows: torch.Tensor, sizes: list[int], comm) -> dict[str, object]:
    from communicators.tensor_layout import all_gatherv_padded
    from communicators.torch_compat import all_gather_single

    rank = comm.rank
    total = sum(sizes)
    starts = [sum(sizes[:r]) for r in range(len(sizes))]

    def listed() -> torch.Tensor:
        out = rows.new_empty(total)
        dist.all_gather(list(out.split(sizes)), rows)
        return out

    def padded() -> torch.Tensor:
        return all_gatherv_padded(rows, sizes, all_gather_single)

    def p2p() -> torch.Tensor:
        out = rows.new_empty(total)
        blocks = out.split(sizes)
        ops = []
        for peer in range(len(sizes)):
            if peer != rank:
                ops.append(dist.P2POp(dist.isend, rows, peer))
                ops.append(dist.P2POp(dist.irecv, blocks[peer], peer))
        works = dist.batch_isend_irecv(ops) if ops else []
        out[starts[rank] : starts[rank] + sizes[rank]].copy_(rows)
        for work in works:
            work.wait()
        return out

    return {
        "list": listed,
        "padded": padded,
        "p2p": p2p,
        "communicator": lambda: comm.all_gatherv(rows, dim=0, sizes=sizes),
    }


def scatter_strategies(full: torch.Tensor, sizes: list[int], comm) -> dict[str, object]:
    """reduce_scatterv of `full` (every rank's whole buffer) to this rank's `sizes[rank]` rows, three ways."""
    from communicators.tensor_layout import reduce_scatterv_padded
    from communicators.torch_compat import reduce_scatter_single

    rank = comm.rank
    blocks = full.split(sizes)

    def listed() -> torch.Tensor:
        out = full.new_empty(sizes[rank])
        dist.reduce_scatter(out, list(blocks))
        return out

    def padded() -> torch.Tensor:
        return reduce_scatterv_padded(full, sizes, rank, reduce_scatter_single)

    def p2p() -> torch.Tensor:
        peers = [peer for peer in range(len(sizes)) if peer != rank]
        received = full.new_empty((len(peers), sizes[rank]))
        ops = []
        for slot, peer in enumerate(peers):
            ops.append(dist.P2POp(dist.isend, blocks[peer], peer))
            ops.append(dist.P2POp(dist.irecv, received[slot], peer))
        for work in dist.batch_isend_irecv(ops) if ops else []:
            work.wait()
        return blocks[rank] + received.sum(dim=0)

    return {
        "list": listed,
        "padded": padded,
        "p2p": p2p,
        # Last: on the CPU it sums in place into `full`, after the others are checked.
        "communicator": lambda: comm.reduce_scatterv(full, dim=0, sizes=sizes),
    }


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, repeats: int) -> None:
    from communicators import create_communicator
    from harness.bench.collectives import uneven_shares
    from harness.bench.timing import DeviceClock, time_interleaved

    device = join_group(rank, world_size, device_type, store_path)
    clock = DeviceClock(device)
    comm = create_communicator(device)
    for collective in ("all_gatherv", "reduce_scatterv"):
        for index, mib in enumerate(SIZES_MIB if device_type == "cuda" else SIZES_MIB[:3]):
            count = mib * (1 << 20) // 2
            sizes = uneven_shares(count, world_size)
            if collective == "all_gatherv":
                rows = torch.full((sizes[rank],), float(rank + 1), dtype=torch.bfloat16, device=device)
                parts = [torch.full((s,), float(r + 1), dtype=torch.bfloat16) for r, s in enumerate(sizes)]
                expected = torch.cat(parts)
                calls = strategies(rows, sizes, comm)
            else:
                full = torch.full((count,), float(rank + 1), dtype=torch.bfloat16, device=device)
                total = world_size * (world_size + 1) // 2
                expected = torch.full((sizes[rank],), float(total), dtype=torch.bfloat16)
                calls = scatter_strategies(full, sizes, comm)
            if device.type == "cpu":
                # gloo's list collectives take equal sizes only; the CPU communicator has its own way.
                del calls["list"]
            if rank == 0 and index == 0:
                print(f"{collective:>15}" + "".join(f"{name:>21}" for name in calls) + "   (us, busbw GB/s)")
            for name, call in calls.items():
                assert torch.equal(call().cpu(), expected), f"rank {rank}: {name} is wrong at {mib} MiB"
            iters = max(5, min(200, 1024 // mib))
            times = time_interleaved(clock, list(calls.values()), warmup=3, iters=iters, repeats=repeats)
            if rank == 0:
                nbytes = count * 2
                cells = "".join(
                    f"{seconds * 1e6:>12.1f} {nbytes * (world_size - 1) / world_size / seconds / 1e9:>8.1f}"
                    for (seconds,) in times
                )
                print(f"{mib:>11} MiB{cells}", flush=True)
    dist.barrier()


def main() -> None:
    run_rank_script(__doc__, rank_main, "repeats", 7)


if __name__ == "__main__":
    main()
