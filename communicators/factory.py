"""`create_communicator`: the platform's communicator for a device, chosen by device type."""

from __future__ import annotations

import torch
import torch.distributed as dist

from communicators.backends import DEFAULT_ALL2ALL_BACKEND
from communicators.base import DeviceCommunicatorBase
from communicators.cpu import CpuCommunicator
from communicators.cuda import CudaCommunicator
from communicators.xpu import XpuCommunicator

COMMUNICATOR_CLASSES: dict[str, type[DeviceCommunicatorBase]] = {
    "cpu": CpuCommunicator,
    "cuda": CudaCommunicator,
    "xpu": XpuCommunicator,
}


def create_communicator(
    device: torch.device | str,
    group: dist.ProcessGroup | None = None,
    *,
    all2all_backend: str = DEFAULT_ALL2ALL_BACKEND,
) -> DeviceCommunicatorBase:
    """The communicator for `device` ("cpu", "cuda", "cuda:1", "xpu", a torch.device) over `group`."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"create_communicator: {device!r} is not a device ({error})") from None
    communicator_class = COMMUNICATOR_CLASSES.get(device.type)
    if communicator_class is None:
        raise ValueError(
            f"create_communicator: no communicator for device type {device.type!r}; "
            f"expected one of {', '.join(COMMUNICATOR_CLASSES)}"
        )
    return communicator_class(device, group, all2all_backend=all2all_backend)
