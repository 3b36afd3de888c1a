"""`CpuCommunicator`: collectives over a gloo group on the CPU."""

from __future__ import annotations

import torch
import torch.distributed as dist

from communicators.base import DeviceCommunicatorBase
from communicators.tensor_layout import RowSplit, new_rows


class CpuCommunicator(DeviceCommunicatorBase):
    """gloo on the CPU; implements the uneven collectives that vLLM's CPU communicator lacks (#57837)."""

    platform = "cpu"
    process_group_backend = "gloo"
    # Every gloo collective is a host round trip: the small tensors of a list travel as one buffer.
    packs_row_lists = True

    def _all_gatherv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        # gloo's all_gather takes equal sizes only, and even padded it measured 3-10x slower on 2 cores.
        # Each rank sends its rows to every peer and receives theirs straight into their blocks, all in
        # flight at once: faster than one broadcast per rank at every size measured
        # (benchmarks/communicators/bench_gloo_all2all.py --gather-rows, bench_findings.md).
        out = new_rows(rows, split.total)
        blocks = out.split(split.sizes)
        works = []
        for peer in range(self.world_size):
            if peer == self.rank:
                continue
            if split.own:
                works.append(dist.isend(rows, group=self.group, group_dst=peer))
            if split.sizes[peer]:
                works.append(dist.irecv(blocks[peer], group=self.group, group_src=peer))
        blocks[self.rank].copy_(rows)
        for work in works:
            work.wait()
        return out

    def _reduce_scatterv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        # A direct reduce-scatter: send every peer its block, receive every peer's copy of this rank's
        # block, sum here. It moves half the bytes of the all_reduce + slice that the naive scheme uses,
        # and gloo's own reduce_scatter measured slower than that all_reduce (bench_findings.md).
        # In place on this rank's block of `rows`, which the API allows.
        own = rows[split.start : split.start + split.own]
        if self.world_size == 1:
            return own
        blocks = rows.split(split.sizes)
        peers = [peer for peer in range(self.world_size) if peer != self.rank]
        received = rows.new_empty((len(peers), *own.shape))
        works = []
        for slot, peer in enumerate(peers):
            if split.sizes[peer]:
                works.append(dist.isend(blocks[peer], group=self.group, group_dst=peer))
            if split.own:
                works.append(dist.irecv(received[slot], group=self.group, group_src=peer))
        for work in works:
            work.wait()
        for slot in range(len(peers)):
            own.add_(received[slot])
        return own
