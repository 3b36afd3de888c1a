"""The naive all2all scheme vLLM removed (PR #33728), kept here only as the bench's point of comparison.

dispatch: every rank broadcasts its own tokens to all, one broadcast per rank and per tensor, into a
buffer of every rank's rows; combine: all_reduce the expert output (every rank's rows), then keep this
rank's own rows. It is not a backend: nothing outside the bench can ask for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


def naive_dispatch(tensors: Sequence[torch.Tensor], sizes: Sequence[int], rank: int) -> list[torch.Tensor]:
    """Each tensor's rows of every rank in rank order (rank r has `sizes[r]`), by one broadcast per rank."""
    offsets = [sum(sizes[:r]) for r in range(len(sizes) + 1)]
    gathered = []
    for tensor in tensors:
        buffer = tensor.new_empty((offsets[-1], *tensor.shape[1:]))
        for src, size in enumerate(sizes):
            block = buffer[offsets[src] : offsets[src + 1]]
            if src == rank:
                block.copy_(tensor)
            if size:
                dist.broadcast(block, src=src)
        gathered.append(buffer)
    return gathered


def naive_combine(hidden_states: torch.Tensor, sizes: Sequence[int], rank: int) -> torch.Tensor:
    """This rank's own rows of the expert output summed over ranks: all_reduce every row, then slice."""
    dist.all_reduce(hidden_states)
    start = sum(sizes[:rank])
    return hidden_states[start : start + sizes[rank]]
