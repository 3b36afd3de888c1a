"""Device communicators for CPU (gloo), CUDA (NCCL) and Intel XPU (xccl), and their all2all managers.

Importing this package never touches a device: rank processes are forked from a parent that must stay
fork-safe (a parent that initialised CUDA cannot fork working CUDA children).
"""

from communicators.all2all import AgRsAll2AllManager, All2AllManagerBase, create_all2all_manager
from communicators.backend_table import render_backend_table, render_readme_block
from communicators.backends import (
    ALL2ALL_BACKENDS,
    DEFAULT_ALL2ALL_BACKEND,
    PLATFORMS,
    All2AllBackendEntry,
    valid_all2all_backend_names,
)
from communicators.base import DeviceCommunicatorBase
from communicators.cpu import CpuCommunicator
from communicators.cuda import CudaCommunicator
from communicators.errors import (
    All2AllBackendFallbackWarning,
    All2AllBackendWarning,
    All2AllManagerUnavailableError,
    DeprecatedAll2AllBackendWarning,
    RemovedAll2AllBackendWarning,
    UnknownAll2AllBackendError,
)
from communicators.factory import create_communicator
from communicators.resolution import All2AllResolution, plan_all2all_backend, resolve_all2all_backend
from communicators.xpu import XpuCommunicator

__all__ = [
    "ALL2ALL_BACKENDS",
    "DEFAULT_ALL2ALL_BACKEND",
    "PLATFORMS",
    "AgRsAll2AllManager",
    "All2AllBackendEntry",
    "All2AllBackendFallbackWarning",
    "All2AllBackendWarning",
    "All2AllManagerBase",
    "All2AllManagerUnavailableError",
    "All2AllResolution",
    "CpuCommunicator",
    "CudaCommunicator",
    "DeprecatedAll2AllBackendWarning",
    "DeviceCommunicatorBase",
    "RemovedAll2AllBackendWarning",
    "UnknownAll2AllBackendError",
    "XpuCommunicator",
    "create_all2all_manager",
    "create_communicator",
    "plan_all2all_backend",
    "render_backend_table",
    "render_readme_block",
    "resolve_all2all_backend",
    "valid_all2all_backend_names",
]
