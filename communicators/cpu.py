"""`CpuCommunicator`: collectives over a gloo group on the CPU."""

from __future__ import annotations

import torch
import torch.distributed as dist

from communicators.base import DeviceCommunicatorBase


class CpuCommunicator(DeviceCommunicatorBase):
    """gloo on the CPU; implements the uneven collectives that vLLM's CPU communicator lacks (#57837)."""

    platform = "cpu"
    process_group_backend = "gloo"

    def _all_gatherv_rows(self, rows: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        # gloo's all_gather takes equal sizes only, and even padded it measured 3-10x slower on 2 cores
        # than one broadcast per rank straight into that rank's block of the output (see the README).
        out = rows.new_empty((sum(sizes), *rows.shape[1:]))
        blocks = out.split(sizes)
        blocks[self.rank].copy_(rows)
        for src, block in enumerate(blocks):
            if block.shape[0]:
                dist.broadcast(block, group=self.group, group_src=src)
        return out

    def _reduce_scatterv_rows(self, rows: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        # gloo's reduce_scatter measured slower than all_reduce on 2 cores (see the README), so sum every
        # row and keep this rank's: the naive scheme's combine, never slower than it. In place on `rows`.
        dist.all_reduce(rows, group=self.group)
        start = sum(sizes[: self.rank])
        return rows[start : start + sizes[self.rank]]
