"""Uneven all-gather and reduce-scatter built from NCCL's primitives: each way a function of contiguous rows.

NCCL has no uneven all-gather or reduce-scatter. torch.distributed's list forms run one broadcast (reduce) per
rank inside one NCCL group, and on 2 x H200 the grouped broadcasts reached 106 GB/s busbw at 1 GiB where the
equal all_gather reaches 269 (benchmarks/bench_findings.md). The ways here, which `benchmarks/
bench_gatherv_strategies.py` times side by side and `UnevenPolicy` chooses among by size:

- grouped: torch.distributed's list form (one NCCL group of broadcasts or reduces): one launch, the least
  host time, the best below a few MiB;
- sequential: one broadcast (reduce) per rank, each its own NCCL launch on the stream, each at the full
  bandwidth of a broadcast, so the whole moves the total at broadcast speed whatever the imbalance;
- point to point: every rank sends each peer its share in one NCCL group (no byte moves twice);
- window (world size 2 only): one equal all-gather (reduce-scatter) over the part of the buffer where each
  rank's chunk lies inside its own block, then one broadcast (reduce) of the rest of the longer block. The
  equal collective uses both directions of the link, so this comes closest to the bound of
  even busbw x mean(s)/max(s), and it copies nothing but the rest;
- padded window (world size 2 only): the shorter rank's rows placed at the end (rank 0) or the start (rank 1)
  of a block of the longer share's length, so that one equal all-gather leaves every row in order inside a
  window of its output, returned as a view: the fewest operations of any way, the cheapest at small sizes;
- padded: every share padded to the longest, one equal collective, then compacted (the XPU way).

Every function takes this rank's rows (dim 0, contiguous), the split, and the group's `GroupCalls`, and
returns a fresh tensor. Every rank sees the same sizes, so every rank skips the same empty blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from communicators.group_calls import GroupCalls
from communicators.tensor_layout import RowSplit, all_gatherv_padded, new_rows, reduce_scatterv_padded

Way = Callable[[torch.Tensor, RowSplit, GroupCalls], torch.Tensor]
ListWay = Callable[[list[torch.Tensor], RowSplit, GroupCalls], list[torch.Tensor]]


# -- all-gather -----------------------------------------------------------------------------------------


def gather_grouped(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """One NCCL group of broadcasts, one per rank (torch.distributed's uneven list all_gather)."""
    out = new_rows(rows, split.total)
    calls.all_gather_blocks(list(out.split(split.sizes)), rows)
    return out


def gather_sequential(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """One broadcast per rank with rows, each its own launch (this rank's block copied in first)."""
    out = new_rows(rows, split.total)
    blocks = out.split(split.sizes)
    blocks[split.rank].copy_(rows)
    for root, block in enumerate(blocks):
        if block.shape[0]:
            calls.broadcast(block, root)
    return out


def gather_point_to_point(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """This rank's rows sent to every peer and theirs received into place, all in one NCCL group; this
    rank's own block is copied while the group runs."""
    out = new_rows(rows, split.total)
    blocks = out.split(split.sizes)
    rank = split.rank
    sends = [(rows, peer) for peer in range(len(blocks)) if peer != rank and split.own]
    recvs = [(block, peer) for peer, block in enumerate(blocks) if peer != rank and block.shape[0]]
    if sends or recvs:
        calls.exchange(sends, recvs, meanwhile=lambda: blocks[rank].copy_(rows))
    else:
        blocks[rank].copy_(rows)
    return out


def gather_window(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """World size 2: an equal all-gather of the shorter share's length, then a broadcast of the rest.

    With shares a and b, the equal all-gather of min(a, b) rows per rank writes out[w : w + 2 min(a, b)],
    where w = a - min(a, b): the longer rank contributes the end (rank 0) or the start (rank 1) of its
    rows that borders the other's block. The rest of the longer block is broadcast from its owner.
    """
    a, b = split.sizes
    common = min(a, b)
    rank = split.rank
    out = new_rows(rows, split.total)
    offset = a - common  # where the window starts: rank 0's last `common` rows, or row 0
    if common:
        # Rank 0 contributes its last `common` rows, rank 1 its first: both are contiguous views.
        mine = rows[split.own - common :] if rank == 0 else rows[:common]
        calls.all_gather(out[offset : offset + 2 * common], mine)
    if a != b:
        longer = 0 if a > b else 1
        rest = slice(0, offset) if longer == 0 else slice(a + common, a + b)
        if rank == longer:
            out[rest].copy_(rows[:offset] if longer == 0 else rows[common:])
        calls.broadcast(out[rest], longer)
    return out


def gather_window_grouped(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """`gather_window` as one NCCL group: the equal all-gather and the rest sent point to point together,
    the longer rank's copy of its own rest made while the group runs."""
    a, b = split.sizes
    common = min(a, b)
    rank = split.rank
    out = new_rows(rows, split.total)
    offset = a - common
    longer = 0 if a > b else 1
    rest = slice(0, offset) if longer == 0 else slice(a + common, a + b)
    own_rest = rows[:offset] if longer == 0 else rows[common:]

    def issue() -> list:
        works = []
        if common:
            mine = rows[split.own - common :] if rank == 0 else rows[:common]
            works.append(calls.all_gather_async(out[offset : offset + 2 * common], mine))
        if a != b:
            peer = 1 - rank
            if rank == longer:
                works.append(calls.group.send([own_rest], peer, 0))
            else:
                works.append(calls.group.recv([out[rest]], peer, 0))
        return works

    def copy_rest() -> None:
        if a != b and rank == longer:
            out[rest].copy_(own_rest)

    calls.in_one_group(rows.device, issue, copy_rest)
    return out


def _aligned_block(rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """World size 2: this rank's rows in a block of the longer share's length, aligned to the other rank's
    block (rank 0's rows at the end, rank 1's at the start), so that the two blocks side by side hold every
    row in order with no gap: rows[L - a : L + b] of [block 0 | block 1]."""
    longest = max(split.sizes)
    if split.own == longest:
        return rows
    # The unused rows are never read: they fall outside the returned window.
    block = new_rows(rows, longest)
    if split.rank == 0:
        block[longest - split.own :].copy_(rows)
    else:
        block[: split.own].copy_(rows)
    return block


def gather_padded_window(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """World size 2: one equal all-gather of the longer share's length, the shorter rank's rows aligned to
    the other's block, the result the window where the rows meet (a view: nothing is compacted).

    Every rank sends max(s) rows, which is the bound, at the equal all-gather's bandwidth; the cost is a
    copy of the shorter share and a buffer of 2 max(s) rows behind the returned view."""
    longest = max(split.sizes)
    out = new_rows(rows, 2 * longest)
    calls.all_gather(out, _aligned_block(rows, split))
    start = longest - split.sizes[0]
    return out[start : start + split.total]


def gather_padded(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """Every share padded to the longest, one equal all-gather, the blocks compacted."""
    return all_gatherv_padded(rows, split.sizes, calls.all_gather)


# -- reduce-scatter -------------------------------------------------------------------------------------


def scatter_grouped(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """One NCCL group of reduces, one per rank (torch.distributed's uneven list reduce_scatter)."""
    out = new_rows(rows, split.own)
    calls.reduce_scatter_blocks(out, list(rows.split(split.sizes)))
    return out


def scatter_sequential(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """One reduce per rank, each its own launch; this rank's block is summed into a copy (input intact)."""
    rank = split.rank
    blocks = list(rows.split(split.sizes))
    out = blocks[rank].clone()
    blocks[rank] = out
    for root, block in enumerate(blocks):
        if block.shape[0]:
            calls.reduce_keeping(block, root)
    return out


def scatter_point_to_point(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """Each peer sent its block, every peer's copy of this rank's block received, all summed here."""
    rank = split.rank
    blocks = rows.split(split.sizes)
    peers = [peer for peer in range(len(blocks)) if peer != rank]
    received = new_rows(rows, len(peers) * split.own).view(len(peers), split.own, *rows.shape[1:])
    sends = [(blocks[peer], peer) for peer in peers if blocks[peer].shape[0]]
    recvs = [(received[slot], peer) for slot, peer in enumerate(peers)] if split.own else []
    if sends or recvs:
        calls.exchange(sends, recvs)
    return blocks[rank] + received.sum(dim=0)


def scatter_window(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """World size 2: an equal reduce-scatter of the shorter share's length, then a reduce of the rest.

    The mirror of `gather_window`: the window rows[w : w + 2 min(a, b)] splits into one chunk inside each
    rank's block; the rest of the longer block is reduced into its owner's output.
    """
    a, b = split.sizes
    common = min(a, b)
    rank = split.rank
    out = new_rows(rows, split.own)
    offset = a - common
    longer = 0 if a > b else 1
    if common:
        # Rank 0's sum lands in its last `common` rows, rank 1's in its first.
        mine = out[split.own - common :] if rank == 0 else out[:common]
        calls.reduce_scatter(mine, rows[offset : offset + 2 * common])
    if a != b:
        rest = slice(0, offset) if longer == 0 else slice(a + common, a + b)
        if rank == longer:
            target = out[:offset] if longer == 0 else out[common:]
            target.copy_(rows[rest])
            calls.reduce(target, longer)
        else:
            calls.reduce_keeping(rows[rest], longer)
    return out


def scatter_padded_window(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """World size 2: the input copied into a buffer of 2 max(s) rows where rank 0's block ends and rank 1's
    begins at the middle, one equal reduce-scatter, this rank's rows kept (the mirror of
    `gather_padded_window`; the unused rows are summed too, and never read)."""
    longest = max(split.sizes)
    start = longest - split.sizes[0]
    padded = new_rows(rows, 2 * longest)
    padded[start : start + split.total].copy_(rows)
    out = new_rows(rows, longest)
    calls.reduce_scatter(out, padded)
    return out[longest - split.own :] if split.rank == 0 else out[: split.own]


def scatter_padded(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """Every rank's block padded to the longest, one equal reduce-scatter, this rank's rows kept."""
    return reduce_scatterv_padded(rows, split.sizes, split.rank, calls.reduce_scatter)


# -- lists (MoE dispatch: hidden states, weights, ids gathered with one split) --------------------------


def gather_list_point_to_point(
    tensors: list[torch.Tensor], split: RowSplit, calls: GroupCalls
) -> list[torch.Tensor]:
    """Every tensor's rows to every peer in one NCCL group: one launch for the whole list."""
    rank = split.rank
    outs, sends, recvs = [], [], []
    for rows in tensors:
        out = new_rows(rows, split.total)
        blocks = out.split(split.sizes)
        sends += [(rows, peer) for peer in range(len(blocks)) if peer != rank and split.own]
        recvs += [(block, peer) for peer, block in enumerate(blocks) if peer != rank and block.shape[0]]
        outs.append(out)

    def copy_own() -> None:
        for rows, out in zip(tensors, outs, strict=True):
            out[split.start : split.start + split.own].copy_(rows)

    if sends or recvs:
        calls.exchange(sends, recvs, meanwhile=copy_own)
    else:
        copy_own()
    return outs


def gather_list_grouped(
    tensors: list[torch.Tensor], split: RowSplit, calls: GroupCalls
) -> list[torch.Tensor]:
    """Every tensor's broadcasts, one per rank, in one NCCL group: one launch for the whole list."""
    outs = []
    for rows in tensors:
        out = new_rows(rows, split.total)
        # In place: the root's block must hold its rows before the group starts.
        out[split.start : split.start + split.own].copy_(rows)
        outs.append(out)

    def issue() -> list:
        return [
            calls.broadcast_async(block, root)
            for out in outs
            for root, block in enumerate(out.split(split.sizes))
            if block.shape[0]
        ]

    calls.in_one_group(tensors[0].device, issue)
    return outs


GATHER_WAYS: dict[str, Way] = {
    "grouped": gather_grouped,
    "sequential": gather_sequential,
    "point_to_point": gather_point_to_point,
    "window": gather_window,
    "window_grouped": gather_window_grouped,
    "padded_window": gather_padded_window,
    "padded": gather_padded,
}
SCATTER_WAYS: dict[str, Way] = {
    "grouped": scatter_grouped,
    "sequential": scatter_sequential,
    "point_to_point": scatter_point_to_point,
    "window": scatter_window,
    "padded_window": scatter_padded_window,
    "padded": scatter_padded,
}


def gather_list_padded(tensors: list[torch.Tensor], split: RowSplit, calls: GroupCalls) -> list[torch.Tensor]:
    """Every tensor padded to the longest share, one coalesced equal all-gather (one NCCL launch, as at
    equal sizes), then each tensor's blocks compacted."""
    longest = max(split.sizes)
    padded = []
    for rows in tensors:
        if split.own == longest:
            padded.append(rows)
            continue
        # The padding rows are never read: they are cut out below.
        block = new_rows(rows, longest)
        block[: split.own].copy_(rows)
        padded.append(block)
    gathered = [new_rows(rows, len(split.sizes) * longest) for rows in tensors]
    calls.all_gather_coalesced(gathered, padded)
    if min(split.sizes) == longest:
        return gathered
    return [
        torch.cat([out[r * longest : r * longest + size] for r, size in enumerate(split.sizes)])
        for out in gathered
    ]


def gather_list_padded_window(
    tensors: list[torch.Tensor], split: RowSplit, calls: GroupCalls
) -> list[torch.Tensor]:
    """World size 2: `gather_padded_window` for every tensor, as one coalesced all-gather (one NCCL launch,
    as at equal sizes); each result a view, nothing compacted."""
    longest = max(split.sizes)
    blocks = [_aligned_block(rows, split) for rows in tensors]
    gathered = [new_rows(rows, 2 * longest) for rows in tensors]
    calls.all_gather_coalesced(gathered, blocks)
    start = longest - split.sizes[0]
    return [out[start : start + split.total] for out in gathered]


LIST_GATHER_WAYS: dict[str, ListWay] = {
    "point_to_point": gather_list_point_to_point,
    "padded_window": gather_list_padded_window,
    "grouped": gather_list_grouped,
    "padded": gather_list_padded,
}
# Ways that exist only at world size 2.
TWO_RANKS_ONLY = frozenset({"window", "window_grouped", "padded_window"})


@dataclass(frozen=True)
class UnevenPolicy:
    """Which way an uneven collective takes, by world size and bytes moved (the gathered total)."""

    # (least total bytes, way), ascending: the last entry whose bound the total reaches wins.
    gather_two_ranks: tuple[tuple[int, str], ...]
    gather_more_ranks: tuple[tuple[int, str], ...]
    scatter_two_ranks: tuple[tuple[int, str], ...]
    scatter_more_ranks: tuple[tuple[int, str], ...]

    def gather_way(self, world_size: int, total_bytes: int) -> str:
        """The name of the all-gather way for `total_bytes` gathered over `world_size` ranks."""
        return _pick(self.gather_two_ranks if world_size == 2 else self.gather_more_ranks, total_bytes)

    def scatter_way(self, world_size: int, total_bytes: int) -> str:
        """The name of the reduce-scatter way for a `total_bytes` input over `world_size` ranks."""
        return _pick(self.scatter_two_ranks if world_size == 2 else self.scatter_more_ranks, total_bytes)


def _pick(table: tuple[tuple[int, str], ...], total_bytes: int) -> str:
    way = table[0][1]
    for least, name in table:
        if total_bytes >= least:
            way = name
    return way
