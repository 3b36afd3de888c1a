"""The engine's communicator: what comm-harness checks. Replace it with your own."""

from __future__ import annotations

import torch
import torch.distributed as dist


class RingCommunicator:
    """all_reduce, all_gather and broadcast over one process group, out of place."""

    def __init__(self, group: dist.ProcessGroup, device: torch.device) -> None:
        self.group = group
        self.device = device
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over every rank, in a new tensor; the input is left as it was."""
        out = tensor.clone().contiguous()
        dist.all_reduce(out, group=self.group)
        return out

    def all_gather(self, tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Every rank's tensor (all the same shape), concatenated along `dim` in rank order."""
        parts = [torch.empty_like(tensor.contiguous()) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous(), group=self.group)
        return torch.cat(parts, dim=dim)

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """`src`'s tensor on every rank, in a new tensor."""
        out = tensor.clone().contiguous()
        dist.broadcast(out, src=src, group=self.group)
        return out

    def destroy(self) -> None:
        """Nothing to free: the process group belongs to the caller."""
