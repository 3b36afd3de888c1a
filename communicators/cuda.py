"""`CudaCommunicator`: collectives over an NCCL group on one CUDA device per rank."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from communicators.base import DeviceCommunicatorBase
from communicators.tensor_layout import RowSplit
from communicators.uneven_rows import (
    GATHER_WAYS,
    SCATTER_WAYS,
    UnevenPolicy,
    gather_list_padded_window,
    gather_list_point_to_point,
)

MIB = 1 << 20
# Which way an uneven collective takes, by the bytes gathered (or the input's bytes for a reduce-scatter).
# From benchmarks/bench_gatherv_strategies.py on 2 x H200 (qualification/2026-11-30-h200-x2-uneven/, shares
# in proportion to rank + 1 and mildly uneven alike). All-gather at two ranks: the padded window (one equal
# all-gather of the longer share, no compaction) is the cheapest launch up to 16 MiB (1 MiB: 71 us against
# 91 for NCCL's grouped broadcasts); between, the window (an equal all-gather plus one broadcast of the
# rest: 64 MiB 123-134 GB/s busbw against 97-110, 256 MiB 140-144 against 102-122); point to point from
# 512 MiB (1 GiB 186-191 against 106). NCCL's grouped reduces were the fastest reduce-scatter at every
# size. Above two ranks the windows do not exist and no way was measured against the grouped one yet (no
# 4-GPU machine was lent), so they keep NCCL's grouped collectives.
NCCL_UNEVEN_POLICY = UnevenPolicy(
    gather_two_ranks=(
        (0, "padded_window"),
        (48 * MIB, "window"),
        (512 * MIB, "point_to_point"),
    ),
    gather_more_ranks=((0, "grouped"),),
    scatter_two_ranks=((0, "grouped"),),
    scatter_more_ranks=((0, "grouped"),),
)
# An uneven list (MoE dispatch: hidden states, weights, ids) at two ranks below this many bytes gathered goes
# as one coalesced all-gather of padded windows (64 / 512 tokens of 4096 bf16: 106 / 113 us against 262 /
# 314 us for the list's point-to-point group, and 83 / 88 us at equal sizes); above it, point to point.
LIST_PADDED_WINDOW_BELOW = 32 * MIB


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
        way = self.uneven_policy.gather_way(self.world_size, split.total * _row_bytes(rows))
        return GATHER_WAYS[way](rows, split, self._calls)

    def _reduce_scatterv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        if split.equal or not self._calls._direct(rows):
            return super()._reduce_scatterv_rows(rows, split)
        way = self.uneven_policy.scatter_way(self.world_size, split.total * _row_bytes(rows))
        return SCATTER_WAYS[way](rows, split, self._calls)

    def _gather_row_list(self, rows: list[torch.Tensor], split: RowSplit) -> list[torch.Tensor]:
        if not split.equal and split.total and len(rows) > 1 and all(self._calls._direct(t) for t in rows):
            # Uneven MoE dispatch: one NCCL launch for the whole list.
            gathered_bytes = split.total * sum(_row_bytes(t) for t in rows)
            if self.world_size == 2 and gathered_bytes < LIST_PADDED_WINDOW_BELOW:
                return gather_list_padded_window(rows, split, self._calls)
            return gather_list_point_to_point(rows, split, self._calls)
        return super()._gather_row_list(rows, split)


def _row_bytes(rows: torch.Tensor) -> int:
    return math.prod(rows.shape[1:]) * rows.element_size()
