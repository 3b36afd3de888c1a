"""Uneven all-gather and reduce-scatter built from NCCL's primitives: each way a function of contiguous rows.

NCCL has no uneven all-gather or reduce-scatter. torch.distributed's list forms run one broadcast (reduce) per
rank inside one NCCL group, and on 2 x H200 the grouped broadcasts reached 106 GB/s busbw at 1 GiB where the
equal all_gather reaches 269 (benchmarks/communicators/bench_findings.md). The ways here, which
`benchmarks/communicators/bench_gatherv_strategies.py` times side by side and `UnevenPolicy` chooses among
by size:

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
- padded: every share padded to the longest, one equal collective, then compacted (the XPU way);
- peer ways (one host whose GPUs reach each other, `peer_memory.py`; no NCCL call): peer copy, every share
  copied out of its owner's workspace by the copy engines (the fastest from a few MiB); peer push, every
  rank storing its rows into every rank's workspace with one kernel, then one clone (the fewest operations,
  the fastest below that); peer add, a reduce-scatter whose add kernel reads the peer's block in place.

Every function takes this rank's rows (dim 0, contiguous), the split, and the group's `GroupCalls`, and
returns a fresh tensor. Every rank sees the same sizes, so every rank skips the same empty blocks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from communicators.group_calls import GroupCalls
from communicators.tensor_layout import (
    RowSplit,
    all_gatherv_padded,
    new_rows,
    reduce_scatterv_padded,
    row_bytes,
)

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


def _aligned_blocks(tensors: list[torch.Tensor], split: RowSplit) -> list[torch.Tensor]:
    """World size 2: each tensor's rows in a block of the longer share's length, aligned to the other rank's
    block (rank 0's rows at the end, rank 1's at the start), so that the two blocks side by side hold every
    row in order with no gap: rows[L - a : L + b] of [block 0 | block 1]. The longer rank's rows are their
    own blocks; the shorter rank's are copied by one `torch._foreach_copy_` of the tensors as they are.

    This runs on the pace-setting rank of every small uneven dispatch without peer memory, where each
    tensor operation costs host time, views included (2-4 us each on the lent H200 hosts,
    benchmarks/communicators/host_op_costs.py): with mixed dtypes the foreach copy loops over the tensors in
    C++, which costs as much as the byte views that would let it run one kernel (37-38 us against 39-40 for
    the whole alignment there), without their stride traps."""
    longest = max(split.sizes)
    if split.own == longest:
        return tensors
    # The unused rows are never read: they fall outside the returned windows.
    blocks = [new_rows(rows, longest) for rows in tensors]
    if split.own:
        place = slice(longest - split.own, longest) if split.rank == 0 else slice(0, split.own)
        torch._foreach_copy_([block[place] for block in blocks], tensors)
    return blocks


def gather_padded_window(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """World size 2: one equal all-gather of the longer share's length, the shorter rank's rows aligned to
    the other's block, the result the window where the rows meet (a view: nothing is compacted).

    Every rank sends max(s) rows, which is the bound, at the equal all-gather's bandwidth; the cost is a
    copy of the shorter share and a buffer of 2 max(s) rows behind the returned view."""
    longest = max(split.sizes)
    out = new_rows(rows, 2 * longest)
    calls.all_gather(out, _aligned_blocks([rows], split)[0])
    start = longest - split.sizes[0]
    return out[start : start + split.total]


def gather_peer_copy(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """Every rank's rows put in its peer-readable workspace, then copied out of every peer's by this rank's
    copy engines (`peer_memory.py`; one host with NVLink): each share moves once, at its own length, with
    no NCCL channel and no SM (`gather_list_peer_copy` of one tensor)."""
    return gather_list_peer_copy([rows], split, calls)[0]


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


def scatter_peer_copy(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """The input put in this rank's peer-readable workspace; this rank's block of every peer's input copied
    out of the peer's by the copy engines and summed here (the mirror of `gather_peer_copy`)."""
    theirs = _own_block_at_peers(rows, split, calls)
    received = new_rows(rows, len(theirs) * split.own).view(len(theirs), split.own, *rows.shape[1:])
    if split.own:
        for slot, block in enumerate(theirs):
            received[slot].copy_(block)
    calls.peer_workspace.end()
    own = rows[split.start : split.start + split.own]
    return own + (received[0] if len(theirs) == 1 else received.sum(dim=0))


def scatter_peer_add(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """The input put in this rank's peer-readable workspace; this rank's block summed straight out of every
    peer's workspace by the add kernel, which reads the peers' memory itself (no copy in between): four
    operations, for the small combines of MoE where host time per operation is the cost."""
    theirs = _own_block_at_peers(rows, split, calls)
    own = rows[split.start : split.start + split.own]
    out = torch.add(own, theirs[0]) if theirs else own.clone()
    for block in theirs[1:]:
        out.add_(block)
    calls.peer_workspace.end()
    return out


def _own_block_at_peers(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> list[torch.Tensor]:
    """The peer ways of reduce-scatter, first half: the whole input put in this rank's workspace, a barrier
    (every rank's input in place), then this rank's block of every peer's input as views of the peer's
    workspace, starting with the next rank. The caller reads them, then calls the workspace's `end`."""
    rank, sizes = split.rank, split.sizes
    handle, _, base = calls.peer_workspace.begin(split.total * row_bytes(rows), rows.device)
    base //= rows.element_size()
    if split.total:
        handle.get_buffer(rank, list(rows.shape), rows.dtype, base).copy_(rows)
    handle.barrier(channel=0)
    shape, offset = [split.own, *rows.shape[1:]], base + split.start * math.prod(rows.shape[1:])
    return [handle.get_buffer(peer, shape, rows.dtype, offset) for peer in _peers_from(rank, len(sizes))]


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
    blocks = _aligned_blocks(tensors, split)
    gathered = [new_rows(rows, 2 * longest) for rows in tensors]
    calls.all_gather_coalesced(gathered, blocks)
    start = longest - split.sizes[0]
    return [out[start : start + split.total] for out in gathered]


def gather_list_peer_copy(
    tensors: list[torch.Tensor], split: RowSplit, calls: GroupCalls
) -> list[torch.Tensor]:
    """Every tensor's rows put in this rank's peer-readable workspace (each at a 16-byte aligned offset),
    then copied out of every peer's by the copy engines. One device barrier between, whatever the list's
    length (the rows are in place before anyone reads); the workspace's `end` keeps the next call from
    overwriting what a peer still reads. Each rank starts with the next one: at more than two ranks no rank
    is read by everyone at once."""
    rank, sizes = split.rank, split.sizes
    offsets, end = _list_offsets(tensors, split)
    handle, _, base = calls.peer_workspace.begin(end, tensors[0].device)
    if split.own:
        for rows, offset in zip(tensors, offsets, strict=True):
            start = (base + offset) // rows.element_size()
            handle.get_buffer(rank, list(rows.shape), rows.dtype, start).copy_(rows)
    handle.barrier(channel=0)
    outs = []
    for rows, offset in zip(tensors, offsets, strict=True):
        out = new_rows(rows, split.total)
        blocks = out.split(sizes)
        row_shape, start = list(rows.shape[1:]), (base + offset) // rows.element_size()
        for peer in _peers_from(rank, len(sizes)):
            if sizes[peer]:
                blocks[peer].copy_(handle.get_buffer(peer, [sizes[peer], *row_shape], rows.dtype, start))
        blocks[rank].copy_(rows)
        outs.append(out)
    calls.peer_workspace.end()
    return outs


def gather_list_peer_copy_batched(
    tensors: list[torch.Tensor], split: RowSplit, calls: GroupCalls
) -> list[torch.Tensor]:
    """`gather_list_peer_copy` for a few hundred tokens, where a dispatch costs host time per operation, not
    bandwidth: every tensor seen as flat bytes, so that one `torch._foreach_copy_` (one kernel) puts the
    list into the workspace and another copies every peer's rows and this rank's own into the outputs.
    Two copies, a barrier between and no NCCL call whatever the list's length (the copies run on SMs)."""
    rank, sizes = split.rank, split.sizes
    offsets, end = _list_offsets(tensors, split)
    handle, spaces, base = calls.peer_workspace.begin(end, tensors[0].device)
    offsets = [base + offset for offset in offsets]
    widths = [row_bytes(rows) for rows in tensors]
    flat = [_flat_bytes(rows) for rows in tensors]
    if split.own:
        mine = spaces[rank]
        places = [
            mine[offset : offset + split.own * width] for offset, width in zip(offsets, widths, strict=True)
        ]
        torch._foreach_copy_(places, flat)
    handle.barrier(channel=0)
    starts = [sum(sizes[:r]) for r in range(len(sizes))]
    peers = [peer for peer in _peers_from(rank, len(sizes)) if sizes[peer]]
    outs, targets, sources = [], [], []
    for rows, own, offset, width in zip(tensors, flat, offsets, widths, strict=True):
        out = new_rows(rows, split.total)
        out_bytes = _flat_bytes(out)
        for peer in peers:
            targets.append(out_bytes[starts[peer] * width : (starts[peer] + sizes[peer]) * width])
            sources.append(spaces[peer][offset : offset + sizes[peer] * width])
        if split.own:
            targets.append(out_bytes[split.start * width : (split.start + split.own) * width])
            sources.append(own)
        outs.append(out)
    if targets:
        torch._foreach_copy_(targets, sources)
    calls.peer_workspace.end()
    return outs


def gather_list_peer_push(
    tensors: list[torch.Tensor], split: RowSplit, calls: GroupCalls
) -> list[torch.Tensor]:
    """Every rank writes its rows straight into every rank's workspace, its own included, at their place in
    the gathered list; after one barrier each rank's workspace holds the whole gathered list, which it
    clones out. For MoE dispatch of a few hundred tokens, where each operation costs host time and the
    padded window's alignment of the shorter share costs as much as the collective (host_op_costs.py):
    one copy kernel for the whole list (its stores reach the peers over NVLink), one barrier, one clone
    per tensor, the same on every rank, and the views of the workspace made once per layout."""
    workspace = calls.peer_workspace
    signature = _signature(tensors)
    offsets, end = _offsets(split.total, signature)
    handle, spaces, base = workspace.begin(end, tensors[0].device)
    key = (split.sizes, signature, base)
    layout = workspace.layouts.get(key)
    if layout is None:
        if len(workspace.layouts) >= MAX_LAYOUTS:
            workspace.layouts.clear()
        layout = workspace.layouts[key] = _push_layout(tensors, split, spaces, base, offsets)
    places, byte_shapes, gathered = layout
    if places:
        copies = len(places) // len(tensors)
        sources = [_as_bytes(rows, shape) for rows, shape in zip(tensors, byte_shapes, strict=True)]
        torch._foreach_copy_(places, [source for source in sources for _ in range(copies)])
    handle.barrier(channel=0)
    outs = [view.clone() for view in gathered]
    workspace.end()
    return outs


def gather_peer_push(rows: torch.Tensor, split: RowSplit, calls: GroupCalls) -> torch.Tensor:
    """`gather_list_peer_push` of one tensor."""
    return gather_list_peer_push([rows], split, calls)[0]


# Layouts of `gather_list_peer_push` kept per workspace mapping (a few views each): MoE batches come in a few
# shapes; past this many, the cache starts over rather than grow with every shape ever seen.
MAX_LAYOUTS = 64


@functools.lru_cache(maxsize=256)
def _offsets(rows: int, signature: tuple) -> tuple[tuple[int, ...], int]:
    """Where each tensor of a list lies in the workspace (bytes, 16-byte aligned, room for `rows` rows of
    the (dtype, row shape) of `signature`), and the bytes all of them need: computed once per shape."""
    offsets, end = [], 0
    for dtype, row_shape in signature:
        offsets.append(end)
        end = -(-(end + rows * math.prod(row_shape) * dtype.itemsize) // 16) * 16
    return tuple(offsets), end


def _push_layout(
    tensors: list[torch.Tensor],
    split: RowSplit,
    spaces: list[torch.Tensor],
    base: int,
    offsets: tuple[int, ...],
) -> tuple[list[torch.Tensor], list[tuple[int, ...]], list[torch.Tensor]]:
    """For `gather_list_peer_push`: where this rank's rows of each tensor go in every rank's workspace (as
    bytes shaped like `_as_bytes` of the rows, tensor by tensor, every rank from the next one round to this
    one), that shape per tensor, and each gathered tensor as a view of this rank's workspace."""
    rank, world_size = split.rank, len(split.sizes)
    places, byte_shapes, gathered = [], [], []
    for rows, offset in zip(tensors, offsets, strict=True):
        width, begin = row_bytes(rows), base + offset
        row_shape = tuple(rows.shape[1:])
        shape = (
            (split.own, *row_shape[:-1], row_shape[-1] * rows.element_size())
            if row_shape
            else (split.own * rows.element_size(),)
        )
        byte_shapes.append(shape)
        if split.own:
            mine = slice(begin + split.start * width, begin + (split.start + split.own) * width)
            places += [spaces[peer][mine].view(shape) for peer in [*_peers_from(rank, world_size), rank]]
        region = spaces[rank][begin : begin + split.total * width]
        gathered.append(region.view(rows.dtype).view(split.total, *row_shape))
    return places, byte_shapes, gathered


def _as_bytes(rows: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Contiguous `rows` as bytes of `shape` (the last dim widened by the element size): one view where the
    last dim has stride 1, as it has unless its size is 1 (see `_flat_bytes`)."""
    if rows.stride(-1) == 1:
        return rows.view(torch.uint8)
    return _flat_bytes(rows).view(shape)


def _list_offsets(tensors: list[torch.Tensor], split: RowSplit) -> tuple[tuple[int, ...], int]:
    """`_offsets` with room for the longest share of each tensor of a list."""
    return _offsets(max(split.sizes), _signature(tensors))


def _signature(tensors: list[torch.Tensor]) -> tuple:
    """What the workspace layout of a list depends on: each tensor's dtype and row shape."""
    return tuple([(rows.dtype, rows.shape[1:]) for rows in tensors])


def _flat_bytes(rows: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor as one flat run of bytes (a view). torch calls a tensor contiguous whatever the
    stride of a dim of size 1, and `view(-1)` keeps such a stride where the tensor has one element, while a
    view as bytes needs stride 1: the flat view is made with stride 1 outright (the elements of a contiguous
    tensor lie one after another from its offset, whatever those strides say)."""
    return rows.as_strided((rows.numel(),), (1,)).view(torch.uint8)


GATHER_WAYS: dict[str, Way] = {
    "grouped": gather_grouped,
    "sequential": gather_sequential,
    "point_to_point": gather_point_to_point,
    "window": gather_window,
    "window_grouped": gather_window_grouped,
    "padded_window": gather_padded_window,
    "peer_copy": gather_peer_copy,
    "peer_push": gather_peer_push,
    "padded": gather_padded,
}
SCATTER_WAYS: dict[str, Way] = {
    "grouped": scatter_grouped,
    "sequential": scatter_sequential,
    "point_to_point": scatter_point_to_point,
    "window": scatter_window,
    "padded_window": scatter_padded_window,
    "peer_copy": scatter_peer_copy,
    "peer_add": scatter_peer_add,
    "padded": scatter_padded,
}
LIST_GATHER_WAYS: dict[str, ListWay] = {
    "point_to_point": gather_list_point_to_point,
    "padded_window": gather_list_padded_window,
    "peer_copy": gather_list_peer_copy,
    "peer_copy_batched": gather_list_peer_copy_batched,
    "peer_push": gather_list_peer_push,
    "grouped": gather_list_grouped,
    "padded": gather_list_padded,
}
# Ways that exist only at world size 2.
TWO_RANKS_ONLY = frozenset({"window", "window_grouped", "padded_window"})
# Ways that read the peers' GPU memory: only where `GroupCalls.peer_workspace.usable` (CUDA, one host).
PEER_MEMORY_ONLY = frozenset({"peer_copy", "peer_copy_batched", "peer_push", "peer_add"})


def ways_that_run(table: dict, world_size: int, peer_memory: bool) -> list[str]:
    """The names of `table`'s ways that can run on a group of `world_size` ranks: the two-rank ones at two
    ranks only, the peer-memory ones only where peer memory is usable."""
    return [
        way
        for way in table
        if (world_size == 2 or way not in TWO_RANKS_ONLY) and (peer_memory or way not in PEER_MEMORY_ONLY)
    ]


def _peers_from(rank: int, world_size: int) -> list[int]:
    """Every other rank, starting with the next one."""
    return [(rank + step) % world_size for step in range(1, world_size)]


@dataclass(frozen=True)
class UnevenPolicy:
    """Which way an uneven collective takes, by world size, bytes moved (the gathered total, or the input of a
    reduce-scatter) and whether the ranks can read each other's GPU memory.

    Each table is a tuple of (least total bytes, way), read top to bottom: an entry takes over from its
    bound up, a later entry over an earlier one, and an entry whose way cannot run on this group (a way of
    `PEER_MEMORY_ONLY` where peer memory is not usable) is passed over. So a table lists the NCCL ways by
    size first, then the peer-memory ways that replace them where they can."""

    gather_two_ranks: tuple[tuple[int, str], ...]
    gather_more_ranks: tuple[tuple[int, str], ...]
    scatter_two_ranks: tuple[tuple[int, str], ...]
    scatter_more_ranks: tuple[tuple[int, str], ...]
    # Lists of tensors gathered with one split (MoE dispatch), by the bytes of all of them gathered.
    list_two_ranks: tuple[tuple[int, str], ...] = ((0, "point_to_point"),)
    list_more_ranks: tuple[tuple[int, str], ...] = ((0, "point_to_point"),)

    def gather_way(self, world_size: int, total_bytes: int, peer_memory: bool = False) -> str:
        """The name of the all-gather way for `total_bytes` gathered over `world_size` ranks."""
        table = self.gather_two_ranks if world_size == 2 else self.gather_more_ranks
        return _pick(table, total_bytes, peer_memory)

    def scatter_way(self, world_size: int, total_bytes: int, peer_memory: bool = False) -> str:
        """The name of the reduce-scatter way for a `total_bytes` input over `world_size` ranks."""
        table = self.scatter_two_ranks if world_size == 2 else self.scatter_more_ranks
        return _pick(table, total_bytes, peer_memory)

    def list_way(self, world_size: int, total_bytes: int, peer_memory: bool = False) -> str:
        """The name of the list-gather way for `total_bytes` (every tensor) gathered over `world_size`."""
        table = self.list_two_ranks if world_size == 2 else self.list_more_ranks
        return _pick(table, total_bytes, peer_memory)

    def ways(self) -> set[tuple[str, str]]:
        """Every (collective, way) the tables name; collective is "gather", "scatter" or "list"."""
        return {
            (name, way)
            for name in ("gather", "scatter", "list")
            for kind in ("two_ranks", "more_ranks")
            for _, way in getattr(self, f"{name}_{kind}")
        }


def _pick(table: tuple[tuple[int, str], ...], total_bytes: int, peer_memory: bool) -> str:
    way = None
    for least, name in table:
        if total_bytes >= least and (peer_memory or name not in PEER_MEMORY_ONLY):
            way = name
    if way is None:
        raise ValueError(f"no way in {table} runs at {total_bytes} bytes (peer memory: {peer_memory})")
    return way
