"""`CudaCommunicator`: collectives over an NCCL group on one CUDA device per rank."""

from __future__ import annotations

import torch
import torch.distributed as dist

from communicators.base import DeviceCommunicatorBase
from communicators.tensor_layout import RowSplit, row_bytes
from communicators.uneven_rows import GATHER_WAYS, LIST_GATHER_WAYS, SCATTER_WAYS, UnevenPolicy

MIB = 1 << 20
# Which way an uneven collective takes, by the bytes gathered (or the input's bytes for a reduce-scatter),
# from benchmarks/communicators/bench_gatherv_strategies.py on 2 x H200
# (qualification/2026-11-30-h200-x2-peer-push/, shares in proportion to rank + 1 and mildly uneven alike;
# busbw in GB/s, times per call).
#
# Where the ranks can read and write each other's GPU memory (one host, peer_memory.py):
# - All-gather: the peer push below 8 MiB (every rank stores its rows into every rank's workspace with one
#   copy kernel, one barrier, one clone): 26-48 us at 256 KiB, 27-49 at 1 MiB, 30-52 at 4 MiB on two hosts,
#   where the padded window took 42-55, 46-87, 48-94 and the peer copy 39-68, 41-72, 49-90. From 8 MiB the
#   peer copy (the copy engines move each share once): at 16 MiB the two hosts disagree (push 75-82 us
#   against 66-68 on one, 78-85 against 88-91 on the other), from 64 MiB the copy engines lead everywhere:
#   172-189 GB/s at 64 MiB, 201-227 at 256 MiB, 216-233 at 1 GiB, where the push (SMs storing over NVLink)
#   stays at 100-137 and the best NCCL way at 121-133, 144 and 188-191.
# - Reduce-scatter: the peer add below 32 MiB (the add kernel reads the peer's block from its memory):
#   47-64 us at 256 KiB-4 MiB and 59-61 at 16 MiB, against 67-108 and 82-93 for NCCL's grouped reduces.
#   From 64 MiB NCCL's grouped reduces are as fast or faster (169-199 against 170-217 for the peer add).
# - MoE dispatch lists: the peer push below 32 MiB (64 / 512 tokens of 4096 bf16: 90-101 / 86-95 us, the
#   padded window 132-163 / 129-132, the equal dispatch 72-91 / 71-85); above, the peer copy (4096 tokens).
# Without peer memory: the padded window (one equal all-gather of the longer share, no compaction) is the
# cheapest launch up to 16 MiB; between, the window (an equal all-gather plus one broadcast of the rest);
# point to point from 512 MiB (1 GiB 186-191); for lists the padded window below 32 MiB, point to point
# above; for reduce-scatter NCCL's grouped reduces.
# Above two ranks the windows do not exist and no way was measured against the grouped one yet (no 4-GPU
# machine was lent), so they keep NCCL's grouped collectives.
NCCL_UNEVEN_POLICY = UnevenPolicy(
    gather_two_ranks=(
        (0, "padded_window"),
        (48 * MIB, "window"),
        (512 * MIB, "point_to_point"),
        (0, "peer_push"),
        (8 * MIB, "peer_copy"),
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
        (0, "peer_push"),
        (32 * MIB, "point_to_point"),
        (32 * MIB, "peer_copy"),
    ),
    list_more_ranks=((0, "point_to_point"),),
)


WAYS_BY_TABLE = {"gather": GATHER_WAYS, "scatter": SCATTER_WAYS, "list": LIST_GATHER_WAYS}


class CudaCommunicator(DeviceCommunicatorBase):
    """NCCL on CUDA: NCCL's own equal collectives; uneven ones by the way `NCCL_UNEVEN_POLICY` picks."""

    platform = "cuda"
    process_group_backend = "nccl"
    uneven_policy: UnevenPolicy = NCCL_UNEVEN_POLICY

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The ways the policy picked, by (table, bytes, peer memory): see `_way`.
        self._picked: dict[tuple[str, int, bool], object] = {}

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
        way = self._way("gather", split.total * row_bytes(rows), self._peer_memory(rows))
        return way(rows, split, self._calls)

    def _reduce_scatterv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        if split.equal or not self._calls._direct(rows):
            return super()._reduce_scatterv_rows(rows, split)
        way = self._way("scatter", split.total * row_bytes(rows), self._peer_memory(rows))
        return way(rows, split, self._calls)

    def _gather_row_list(self, rows: list[torch.Tensor], split: RowSplit) -> list[torch.Tensor]:
        if not split.equal and split.total and len(rows) > 1 and self._calls._direct_all(rows):
            # Uneven MoE dispatch: the whole list in one way, as one NCCL launch or one peer copy.
            way = self._way("list", split.total * sum(map(row_bytes, rows)), self._peer_memory(rows[0]))
            return way(rows, split, self._calls)
        return super()._gather_row_list(rows, split)

    def _way(self, table: str, total_bytes: int, peer_memory: bool):
        """The function of the way `uneven_policy` picks from `table` ("gather", "scatter" or "list") for
        `total_bytes`, remembered: callers repeat a few sizes (one per batch shape), and at MoE sizes, where
        each call costs host time, walking the policy's tables cost more than this lookup."""
        key = (table, total_bytes, peer_memory)
        way = self._picked.get(key)
        if way is None:
            if len(self._picked) >= 1024:
                self._picked.clear()  # sizes that never repeat: start over rather than grow
            pick = getattr(self.uneven_policy, f"{table}_way")
            name = pick(self.world_size, total_bytes, peer_memory)
            way = self._picked[key] = WAYS_BY_TABLE[table][name]
        return way

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
