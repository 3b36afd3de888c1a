"""`CudaCommunicator`: collectives over an NCCL group on one CUDA device per rank."""

from __future__ import annotations

import torch
import torch.distributed as dist

from communicators.base import DeviceCommunicatorBase
from communicators.tensor_layout import RowSplit, row_bytes
from communicators.uneven_rows import GATHER_WAYS, LIST_GATHER_WAYS, SCATTER_WAYS, UnevenPolicy

MIB = 1 << 20
KIB = 1 << 10
# Which way an uneven collective takes, by the bytes gathered (or the input's bytes for a reduce-scatter),
# from benchmarks/bench_gatherv_strategies.py on 2 x H200 (qualification/2026-11-30-h200-x2-peer-copy/,
# shares in proportion to rank + 1 and mildly uneven alike; busbw in GB/s).
#
# All-gather at two ranks. Where the ranks can read each other's GPU memory (one host, peer_memory.py), the
# peer copy from 256 KiB: its copy engines move each share once at its own length, 176-187 at 64 MiB,
# 202-219 at 256 MiB, 215-230 at 1 GiB, where the best NCCL way reaches 120-130, 142 and 187 and the equal
# all-gather 205, 234 and 269; at 256 KiB-16 MiB it is as fast as the padded window or faster (76-89 us).
# Without peer memory: the padded window (one equal all-gather of the longer share, no compaction) is the
# cheapest launch up to 16 MiB; between, the window (an equal all-gather plus one broadcast of the rest,
# 64 MiB 120-130, 256 MiB 138-142); point to point from 512 MiB (1 GiB 186).
# Reduce-scatter at two ranks: NCCL's grouped reduces were the fastest or within a few percent from 64 MiB
# (the peer copy 155-198, the peer add 154-171, grouped 169-194). Below, with peer memory, the peer add
# (the add kernel reads the peer's block from its memory): four operations, as fast as the equal
# reduce-scatter at MoE combine sizes (64 / 512 tokens: 62-67 us against 52-62 equal and 94-101 grouped;
# 4 MiB 52-53 us against 49-76 grouped, 16 MiB 61-66 against 68-70).
# MoE dispatch lists at two ranks: the padded window as one coalesced all-gather below 32 MiB (64 / 512
# tokens of 4096 bf16: 145-220 us, the peer copies 140-221, point to point 252-375, equal sizes 78-100;
# host-bound: each costs about its host time); above, the peer copy (4096 tokens: 200 us against 193-361
# for point to point, over three runs).
# Above two ranks the windows do not exist and no way was measured against the grouped one yet (no 4-GPU
# machine was lent), so they keep NCCL's grouped collectives.
NCCL_UNEVEN_POLICY = UnevenPolicy(
    gather_two_ranks=(
        (0, "padded_window"),
        (48 * MIB, "window"),
        (512 * MIB, "point_to_point"),
        (256 * KIB, "peer_copy"),
    ),
    gather_more_ranks=((0, "grouped"),),
    scatter_two_ranks=(
        (0, "grouped"),
        (0, "peer_add"),
        (32 * MIB, "grouped"),
    ),
    scatter_more_ranks=((0, "grouped"),),
    list_two_ranks=(
        (0, "padded_window"),
        (32 * MIB, "point_to_point"),
        (32 * MIB, "peer_copy"),
    ),
    list_more_ranks=((0, "point_to_point"),),
)


class CudaCommunicator(DeviceCommunicatorBase):
    """NCCL on CUDA: NCCL's own equal collectives; uneven ones by the way `NCCL_UNEVEN_POLICY` picks."""

    platform = "cuda"
    process_group_backend = "nccl"
    uneven_policy: UnevenPolicy = NCCL_UNEVEN_POLICY

    def _device_for(self, device: torch.device) -> torch.device:
        device = super()._device_for(device)
        return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())

    def barrier(self) -> None:
        """Wait until every rank of the group reaches this point (on this rank's GPU)."""
        # Without device_ids NCCL guesses the GPU from the current device and warns when it may be wrong.
        dist.barrier(group=self.group, device_ids=[self.device.index])

    def _all_gatherv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        if split.equal or not self._calls._direct(rows):
            # Equal sizes: NCCL's all-gather. Tensor subclasses, complex tensors, torch.compile and
            # coalescing managers: torch.distributed's list form, which knows how to handle them.
            return super()._all_gatherv_rows(rows, split)
        total = split.total * row_bytes(rows)
        way = self.uneven_policy.gather_way(self.world_size, total, self._peer_memory(rows))
        return GATHER_WAYS[way](rows, split, self._calls)

    def _reduce_scatterv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        if split.equal or not self._calls._direct(rows):
            return super()._reduce_scatterv_rows(rows, split)
        total = split.total * row_bytes(rows)
        way = self.uneven_policy.scatter_way(self.world_size, total, self._peer_memory(rows))
        return SCATTER_WAYS[way](rows, split, self._calls)

    def _gather_row_list(self, rows: list[torch.Tensor], split: RowSplit) -> list[torch.Tensor]:
        if not split.equal and split.total and len(rows) > 1 and self._calls._direct_all(rows):
            # Uneven MoE dispatch: the whole list in one way, as one NCCL launch or one peer copy.
            total = split.total * sum(row_bytes(t) for t in rows)
            way = self.uneven_policy.list_way(self.world_size, total, self._peer_memory(rows[0]))
            return LIST_GATHER_WAYS[way](rows, split, self._calls)
        return super()._gather_row_list(rows, split)

    def _peer_memory(self, rows: torch.Tensor) -> bool:
        """Whether the peer-copy ways may run: every rank's GPU reachable from every other (agreed once,
        collectively, the first time an uneven collective asks), and not inside a CUDA graph capture, where
        the workspace could not be allocated or grown."""
        # The capture check first: deciding usability is a collective, which a graph capture cannot hold.
        return not torch.cuda.is_current_stream_capturing() and self._calls.peer_workspace.usable(rows.device)

    def destroy(self) -> None:
        """Release the all2all manager and the peer workspace; the process group belongs to the caller."""
        super().destroy()
        self._calls.peer_workspace.release()
