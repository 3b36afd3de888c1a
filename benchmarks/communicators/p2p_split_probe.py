"""Issue 21: can point-to-point beat the window at 64-256 MiB on NCCL? Each send split into k NCCL ops.

At world size 2 with shares 1/3 and 2/3 of the total, `point_to_point` (one NCCL group: a send and a recv per
rank) reached 104-118 GB/s busbw at 64-256 MiB where the window reached 122-147 and the bound (even busbw x
mean/max) is 145-180; at 1 GiB point to point reaches 187. NCCL sizes a send/recv kernel's grid by message
size, so this script asks whether more, smaller ops in the same group, or NCCL's channel and chunk settings
(set them in the environment: they are read at communicator creation), move more. Prints busbw per way and
size, the slowest rank's median of repeats (harness.bench.timing); every result is checked first.

    python benchmarks/communicators/p2p_split_probe.py
    NCCL_MIN_NCHANNELS=32 VARIANT=minch32 python benchmarks/communicators/p2p_split_probe.py --sizes-mib 64
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.forked_ranks import join_group, run_forked_ranks  # noqa: E402
from communicators.group_calls import GroupCalls  # noqa: E402
from communicators.tensor_layout import RowSplit, new_rows, row_split  # noqa: E402
from communicators.uneven_rows import GATHER_WAYS  # noqa: E402
from harness.bench.timing import DeviceClock, time_interleaved  # noqa: E402

SPLITS = (2, 4, 8, 16)


def p2p_split(rows: torch.Tensor, split: RowSplit, calls: GroupCalls, pieces: int) -> torch.Tensor:
    """`point_to_point` at world size 2 with this rank's send and the peer's block cut into `pieces` ops."""
    out = new_rows(rows, split.total)
    blocks = out.split(split.sizes)
    rank, peer = split.rank, 1 - split.rank
    sends = [(piece, peer) for piece in rows.chunk(pieces)]
    recvs = [(piece, peer) for piece in blocks[peer].chunk(pieces)]
    calls.exchange(sends, recvs, meanwhile=lambda: blocks[rank].copy_(rows))
    return out


def rank_main(rank: int, store_path: str, sizes_mib: list[int]) -> None:
    device = join_group(rank, 2, "cuda", store_path)
    calls = GroupCalls(dist.group.WORLD)
    clock = DeviceClock(device)
    for mib in sizes_mib:
        probe_size(rank, clock, calls, mib, os.environ.get("VARIANT", "default"))


def probe_size(rank: int, clock: DeviceClock, calls: GroupCalls, mib: int, label: str) -> None:
    """Every way at `mib` MiB in all (shares 1/3 and 2/3), checked, then timed; rank 0 prints the line."""
    device = clock.device
    count = mib * (1 << 20) // 2  # bfloat16 elements in all
    sizes = [count // 3, count - count // 3]
    split = row_split(tuple(sizes), 2, rank)
    rows = torch.full((sizes[rank],), float(rank + 1), dtype=torch.bfloat16, device=device)
    half = torch.ones(count // 2, dtype=torch.bfloat16, device=device)
    even_out = torch.empty(count // 2 * 2, dtype=torch.bfloat16, device=device)
    ways = {"even": lambda: calls.all_gather(even_out, half)}
    ways["p2p"] = lambda: GATHER_WAYS["point_to_point"](rows, split, calls)
    for pieces in SPLITS:
        ways[f"p2p/{pieces}"] = lambda pieces=pieces: p2p_split(rows, split, calls, pieces)
    ways["window"] = lambda: GATHER_WAYS["window"](rows, split, calls)
    expected = torch.cat(
        [torch.full((s,), float(r + 1), dtype=torch.bfloat16, device=device) for r, s in enumerate(sizes)]
    )
    for name, call in ways.items():
        if name != "even":
            assert torch.equal(call(), expected), f"rank {rank}: {name} wrong at {mib} MiB"
    # The slowest rank's median of 3 repeats of 8 calls each, the ways interleaved.
    seconds = time_interleaved(clock, list(ways.values()), warmup=3, iters=8, repeats=3)
    times = {name: phases[0] for name, phases in zip(ways, seconds, strict=True)}
    nbytes = count * 2
    bound = nbytes / 2 / times["even"] / 1e9 * 0.75  # mean/max of shares 1/3, 2/3
    if rank == 0:
        cells = "  ".join(f"{name}={nbytes / 2 / t / 1e9:.0f}" for name, t in times.items())
        print(f"[{label}] {mib}MiB bound={bound:.0f} 85%={0.85 * bound:.0f} | {cells}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-mib", default="64,256,1024", help="total sizes in MiB (default 64,256,1024)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes_mib.split(",")]
    return run_forked_ranks(2, lambda rank, store_path: rank_main(rank, store_path, sizes))


if __name__ == "__main__":
    raise SystemExit(main())
