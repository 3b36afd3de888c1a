"""`CudaCommunicator`: collectives over an NCCL group on one CUDA device per rank."""

from __future__ import annotations

import torch
import torch.distributed as dist

from communicators.base import DeviceCommunicatorBase


class CudaCommunicator(DeviceCommunicatorBase):
    """NCCL on CUDA; the base's collectives are NCCL's own, uneven lists included."""

    platform = "cuda"
    process_group_backend = "nccl"

    def _device_for(self, device: torch.device) -> torch.device:
        device = super()._device_for(device)
        return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())

    def barrier(self) -> None:
        """Wait until every rank of the group reaches this point (on this rank's GPU)."""
        # Without device_ids NCCL guesses the GPU from the current device and warns when it may be wrong.
        dist.barrier(group=self.group, device_ids=[self.device.index])
