"""`XpuCommunicator`: collectives over an xccl group on Intel GPUs, or emulated over gloo on the CPU."""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist

from communicators.backends import DEFAULT_ALL2ALL_BACKEND
from communicators.base import DeviceCommunicatorBase
from communicators.tensor_layout import RowSplit, all_gatherv_padded, normalize_dim, reduce_scatterv_padded

logger = logging.getLogger("communicators")


class XpuCommunicator(DeviceCommunicatorBase):
    """xccl on Intel GPUs: uneven collectives built from equal-size ones on per-size (padded) buffers.

    `emulated=True` runs this exact logic on the CPU over a gloo group, so that it is tested where no
    Intel GPU exists; `emulated` stays readable on the instance so tests can say they ran emulated.
    """

    platform = "xpu"
    process_group_backend = "xccl"
    # Each uneven collective pads and copies: one buffer for the small tensors of a list is fewer copies.
    packs_row_lists = True

    def __init__(
        self,
        device: torch.device | str = "xpu",
        group: dist.ProcessGroup | None = None,
        *,
        all2all_backend: str = DEFAULT_ALL2ALL_BACKEND,
        emulated: bool = False,
    ) -> None:
        self.emulated = emulated
        if emulated:
            self.process_group_backend = "gloo"
        super().__init__(device, group, all2all_backend=all2all_backend)
        if emulated:
            logger.info("XpuCommunicator on rank %d is emulated: XPU logic on cpu over gloo", self.rank)

    def _device_for(self, device: torch.device) -> torch.device:
        if self.emulated:
            if device.type != "cpu":
                raise ValueError(f"an emulated XpuCommunicator runs on the cpu over gloo, got {device}")
            return device
        device = super()._device_for(device)
        return device if device.index is not None else torch.device("xpu", torch.xpu.current_device())

    def gather(self, input_: torch.Tensor, dst: int = 0, dim: int = -1) -> torch.Tensor | None:
        """On `dst`, every rank's `input_` concatenated along `dim`; None on the other ranks."""
        # As in vLLM: xccl's gather is unreliable across nodes (Ray clusters), so all-gather and keep dst's.
        self._check_peer(dst, "dst")
        normalize_dim(input_, dim, self.rank)
        gathered = self.all_gather(input_, dim=dim)
        return gathered if self.rank == dst else None

    def _all_gatherv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        return all_gatherv_padded(rows, split.sizes, self._calls.all_gather)

    def _reduce_scatterv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        return reduce_scatterv_padded(rows, split.sizes, self.rank, self._calls.reduce_scatter)
