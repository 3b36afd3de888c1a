"""Tensor shapes around collectives: rows along dim 0, checked sizes, byte-packing and padding.

Every collective here works on "rows": the tensor with the collective's dim moved to dim 0 and made
contiguous, so that a rank's share is a contiguous block and any dim is handled by one code path.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def normalize_dim(tensor: torch.Tensor, dim: int, rank: int) -> int:
    """`dim` as a non-negative index into `tensor`, or a ValueError naming the rank."""
    ndim = tensor.dim()
    if ndim == 0:
        raise ValueError(f"rank {rank}: collectives along a dim need a tensor with dims, got a 0-d tensor")
    if not -ndim <= dim < ndim:
        raise ValueError(f"rank {rank}: dim {dim} is out of range for shape {tuple(tensor.shape)}")
    return dim % ndim


def dense(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` with row-major strides (a copy only where needed)."""
    # An empty tensor counts as contiguous whatever its strides, and views of it (to bytes) then fail.
    return tensor.contiguous() if tensor.numel() else tensor.new_empty(tensor.shape)


def to_rows(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """`tensor` with `dim` moved to dim 0, with row-major strides (a copy only where the layout needs one)."""
    # The common case costs nothing: a movedim alone is a microsecond, and collectives on accelerators are
    # host-bound below a few MiB, so every microsecond of the hot path shows in the bench.
    if dim == 0 and tensor.is_contiguous() and tensor.numel():
        return tensor
    return dense(tensor.movedim(dim, 0))


def from_rows(rows: torch.Tensor, dim: int) -> torch.Tensor:
    """The inverse of `to_rows`: dim 0 moved back to `dim`, with row-major strides."""
    if dim == 0 and rows.is_contiguous() and rows.numel():
        return rows
    return dense(rows.movedim(0, dim))


def row_bytes(rows: torch.Tensor) -> int:
    """The bytes of one row (everything past dim 0) of `rows`."""
    return math.prod(rows.shape[1:]) * rows.element_size()


def new_rows(like: torch.Tensor, count: int) -> torch.Tensor:
    """An uninitialised tensor of `count` rows shaped like the rows of `like` (same dtype and device)."""
    # On the hot path: `new_empty` parses a tuple shape at about twice the cost of separate ints (0.9 us
    # against 1.8 us per call here), and a 1-D tensor needs no row shape at all.
    shape = like.shape
    if len(shape) == 1:
        return like.new_empty(count)
    return like.new_empty(count, *shape[1:])


def check_sizes(sizes: Sequence[int], world_size: int, rank: int) -> list[int]:
    """`sizes` as a list of non-negative ints, one per rank, or a ValueError saying what is wrong."""
    sizes = [int(size) for size in sizes]
    if len(sizes) != world_size:
        raise ValueError(
            f"rank {rank}: sizes {sizes} has {len(sizes)} entries; it needs one per rank ({world_size})"
        )
    if any(size < 0 for size in sizes):
        raise ValueError(f"rank {rank}: sizes {sizes} has a negative entry")
    return sizes


@dataclass(frozen=True)
class RowSplit:
    """How the rows of a gathered (or reduced) buffer are shared among ranks, seen from one rank."""

    sizes: tuple[int, ...]  # rows of each rank, in rank order
    total: int
    equal: bool  # every rank has the same number of rows: the collectives' `_single` forms apply
    start: int  # this rank's first row
    own: int  # this rank's rows
    rank: int  # the rank this split is seen from


# Callers pass the same few sizes over and over (one per batch shape): checking and summing them once per
# distinct value keeps Python loops out of every collective call.
@functools.lru_cache(maxsize=256)
def row_split(sizes: tuple[int, ...], world_size: int, rank: int) -> RowSplit:
    """The checked split of `sizes` (one entry per rank) as `rank` sees it; a ValueError when invalid."""
    checked = tuple(check_sizes(sizes, world_size, rank))
    return RowSplit(
        sizes=checked,
        total=sum(checked),
        equal=checked.count(checked[0]) == world_size,
        start=sum(checked[:rank]),
        own=checked[rank],
        rank=rank,
    )


@functools.lru_cache(maxsize=256)
def equal_split(size: int, world_size: int, rank: int) -> RowSplit:
    """The split where every one of `world_size` ranks has `size` rows."""
    return RowSplit(
        sizes=(size,) * world_size,
        total=size * world_size,
        equal=True,
        start=size * rank,
        own=size,
        rank=rank,
    )


@dataclass(frozen=True)
class PackedColumn:
    """Where one tensor lies in a byte-packed row buffer, and how to rebuild it."""

    dtype: torch.dtype
    row_shape: tuple[int, ...]
    offset: int
    width: int


def pack_rows(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[PackedColumn]]:
    """Concatenate row tensors of any dtypes, byte by byte, into one uint8 tensor of shape (n, bytes)."""
    columns: list[PackedColumn] = []
    parts: list[torch.Tensor] = []
    offset = 0
    for tensor in rows:
        row_shape = tuple(tensor.shape[1:])
        flat = dense(tensor.reshape(tensor.shape[0], math.prod(row_shape)))
        if flat.stride(-1) != 1:
            # `is_contiguous` ignores the strides of size-1 dims (one column sliced from a wider buffer, say),
            # but a byte view needs the last stride to be 1.
            flat = flat.clone(memory_format=torch.contiguous_format)
        as_bytes = flat.view(torch.uint8)
        columns.append(PackedColumn(tensor.dtype, row_shape, offset, as_bytes.shape[1]))
        parts.append(as_bytes)
        offset += as_bytes.shape[1]
    return torch.cat(parts, dim=1), columns


def unpack_rows(packed: torch.Tensor, columns: Sequence[PackedColumn]) -> list[torch.Tensor]:
    """The inverse of `pack_rows` for a packed buffer with any number of rows."""
    n = packed.shape[0]
    return [_unpack_column(packed, c, n) for c in columns]


def _unpack_column(packed: torch.Tensor, column: PackedColumn, n: int) -> torch.Tensor:
    if column.width == 0:
        # Rows of no elements (a 0-length trailing dim): a byte view of them cannot be re-typed, as a
        # 0-width tensor's strides are not a multiple of the element size; there is nothing to copy anyway.
        return packed.new_empty((n, *column.row_shape), dtype=column.dtype)
    # Always a fresh buffer: with one row (or one column) the byte slice counts as contiguous, but its storage
    # offset and row stride need not be multiples of the element size, which re-typing it requires.
    column_bytes = packed[:, column.offset : column.offset + column.width]
    return (
        column_bytes.clone(memory_format=torch.contiguous_format)
        .view(column.dtype)
        .view(n, *column.row_shape)
    )


def all_gatherv_padded(
    rows: torch.Tensor,
    sizes: Sequence[int],
    all_gather_equal: Callable[[torch.Tensor, torch.Tensor], None],
) -> torch.Tensor:
    """Uneven all-gather from an equal-size one: pad every rank's rows to the largest, gather, unpad."""
    world_size = len(sizes)
    longest = max(sizes)
    padded = rows
    if rows.shape[0] < longest:
        padded = rows.new_zeros((longest, *rows.shape[1:]))
        padded[: rows.shape[0]] = rows
    gathered = rows.new_empty((world_size * longest, *rows.shape[1:]))
    all_gather_equal(gathered, padded)
    if min(sizes) == longest:
        return gathered
    blocks = gathered.view(world_size, longest, *rows.shape[1:])
    return torch.cat([blocks[r, : sizes[r]] for r in range(world_size)])


def reduce_scatterv_padded(
    rows: torch.Tensor,
    sizes: Sequence[int],
    rank: int,
    reduce_scatter_equal: Callable[[torch.Tensor, torch.Tensor], None],
) -> torch.Tensor:
    """Uneven reduce-scatter from an equal-size one: pad every rank's chunk to the largest, reduce, unpad."""
    world_size = len(sizes)
    longest = max(sizes)
    padded = rows
    if min(sizes) < longest:
        padded = rows.new_zeros((world_size * longest, *rows.shape[1:]))
        for r, chunk in enumerate(rows.split(list(sizes))):
            padded[r * longest : r * longest + sizes[r]] = chunk
    out = rows.new_empty((longest, *rows.shape[1:]))
    reduce_scatter_equal(out, padded)
    return out[: sizes[rank]]
