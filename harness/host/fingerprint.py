"""The environment a cell ran in: Python, torch and its backends, GPUs and driver — without initialising CUDA.

Runs inside the cell's environment (the host or the container). `python -m harness.host.fingerprint` prints
the
same facts as JSON; the host probe uses that to keep torch out of the harness process.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from harness.common.contract import GPU_ACCESS_ENV, IMAGE_DIGEST_ENV, IMAGE_ENV

# Variables that change how collectives behave; recorded so two runs can be compared.
RECORDED_ENV_PREFIXES = (
    "NCCL_",
    "TORCH_",
    "NVSHMEM_",
    "CCL_",
    "ZE_",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "VLLM_",
)


@dataclass(frozen=True)
class NvidiaGpu:
    """One NVIDIA GPU as nvidia-smi reports it."""

    index: int
    name: str
    driver_version: str
    memory: str


def query_nvml_gpus() -> tuple[list[NvidiaGpu], str]:
    """NVIDIA GPUs from the driver's NVML library (libnvidia-ml.so.1) through ctypes, never through CUDA.

    Where nvidia-smi is absent but the driver's libraries are there: a container given its GPUs by the
    harness (image.gpus: devices) has the libraries, not the tool.
    """
    import ctypes

    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return [], "nvidia-smi not found, nor libnvidia-ml.so.1"
    if nvml.nvmlInit_v2() != 0:
        return [], "NVML did not initialise (libnvidia-ml.so.1 found)"
    try:
        text = ctypes.create_string_buffer(96)
        driver = text.value.decode() if nvml.nvmlSystemGetDriverVersion(text, 96) == 0 else "?"
        count = ctypes.c_uint(0)
        nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
        gpus = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            name = text.value.decode() if nvml.nvmlDeviceGetName(handle, text, 96) == 0 else "?"
            memory = (ctypes.c_ulonglong * 3)()  # nvmlMemory_t: total, free, used
            total = memory[0] // (1 << 20) if nvml.nvmlDeviceGetMemoryInfo(handle, memory) == 0 else 0
            gpus.append(NvidiaGpu(index, name, driver, f"{total} MiB"))
    finally:
        nvml.nvmlShutdown()
    return gpus, "" if gpus else "NVML lists no GPU"


def query_nvidia_gpus(timeout_s: float = 10.0) -> tuple[list[NvidiaGpu], str]:
    """NVIDIA GPUs from nvidia-smi (never through CUDA), and why none were found if so."""
    if shutil.which("nvidia-smi") is None:
        return [], "nvidia-smi not found"
    command = ["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [], f"nvidia-smi failed: {error}"
    if done.returncode != 0:
        return [], f"nvidia-smi failed: {(done.stderr or done.stdout).strip()[:200]}"
    gpus = []
    for line in done.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 4 and fields[0].isdigit():
            gpus.append(NvidiaGpu(int(fields[0]), fields[1], fields[2], fields[3]))
    return gpus, "" if gpus else "nvidia-smi lists no GPU"


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def toolchain_facts() -> dict[str, Any]:
    """Python, torch, CUDA/NCCL/XPU/oneCCL versions and backend availability; CUDA is never initialised."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": None,
        "torch_cuda": None,
        "nccl": None,
        "torch_xpu": None,
        "oneccl": _package_version("oneccl") or _package_version("oneccl-devel"),
        # An engine whose communicators a cell qualifies (--dist-communicator vllm); None when absent.
        "vllm": _package_version("vllm"),
        "gloo_available": False,
        "nccl_available": False,
        "xccl_available": False,
        "xpu_available": False,
        "xpu_device_count": 0,
        "error": "",
    }
    try:
        import torch
        import torch.distributed as dist
    except Exception as error:  # a broken torch install is a fact to report, not a crash
        facts["error"] = f"cannot import torch: {error}"
        return facts
    facts["torch"] = torch.__version__
    facts["torch_cuda"] = torch.version.cuda
    facts["torch_xpu"] = getattr(torch.version, "xpu", None)
    facts["gloo_available"] = dist.is_available() and dist.is_gloo_available()
    facts["nccl_available"] = dist.is_available() and dist.is_nccl_available()
    is_xccl = getattr(dist, "is_xccl_available", None)
    facts["xccl_available"] = bool(dist.is_available() and is_xccl is not None and is_xccl())
    if facts["nccl_available"]:
        try:
            # The version linked into torch; reading it loads no CUDA context.
            version = torch.cuda.nccl.version()
            facts["nccl"] = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
        except Exception as error:
            facts["nccl"] = f"unknown ({error})"
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and facts["torch_xpu"]:
        try:
            facts["xpu_available"] = bool(xpu.is_available())
            facts["xpu_device_count"] = int(xpu.device_count()) if facts["xpu_available"] else 0
        except Exception as error:
            facts["error"] = f"torch.xpu check failed: {error}"
    return facts


def collect_fingerprint() -> dict[str, Any]:
    """Everything recorded in a cell's fingerprint.json."""
    gpus, _ = query_nvidia_gpus()
    if not gpus and os.environ.get(GPU_ACCESS_ENV):
        gpus, _ = query_nvml_gpus()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        **toolchain_facts(),
        "nvidia_driver": gpus[0].driver_version if gpus else None,
        "nvidia_gpus": [asdict(gpu) for gpu in gpus],
        "image_digest": os.environ.get(IMAGE_DIGEST_ENV),
        "image": os.environ.get(IMAGE_ENV),
        # How a container got its GPUs (harness/running/executors/gpu_access.py); None on the host.
        "gpu_access": os.environ.get(GPU_ACCESS_ENV),
        "env": {
            name: value
            for name, value in sorted(os.environ.items())
            if name.startswith(RECORDED_ENV_PREFIXES)
        },
    }


if __name__ == "__main__":
    json.dump(toolchain_facts(), sys.stdout)
