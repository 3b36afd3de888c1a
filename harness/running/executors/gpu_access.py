"""How a cuda cell's container gets exactly its GPUs: through the NVIDIA runtime, or from the harness itself.

Two ways, chosen per device by the matrix's `image: {gpus: ...}`:

- `runtime`: a DeviceRequest for the cell's GPU ids. The engine's NVIDIA container runtime (the NVIDIA
  container toolkit, configured in dockerd) injects the device nodes and the driver's libraries.
- `devices`: the harness does what that runtime does, with nothing installed on the host but the driver:
  the device nodes of exactly the cell's GPUs (`/dev/nvidia<N>`) and the driver's shared ones
  (`nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`, the `nvidia-caps` nodes that exist) as `devices`, and the
  host's driver libraries (`libcuda.so.1`, `libnvidia-ml.so.1` and their siblings of the same driver
  version), or a folder the matrix names (`driver_dir`), mounted read-only under /usr/local/nvidia.
- `auto` (the default): `runtime` where the engine lists an `nvidia` runtime, else `devices`.

Neither way makes the container privileged or adds a capability: device nodes pass through the device
cgroup, and the driver's files are read-only. The choice and what it mounted are recorded in the cell's
fingerprint (HARNESS_GPU_ACCESS) and shown by `harness plan`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.common.contract import GPU_ACCESS_ENV
from harness.common.errors import ConfigurationError
from harness.planning.plan import gpu_access_mode

# Where the driver's libraries are mounted in the container, as the NVIDIA runtime and Kubernetes' device
# plugin put them; the harness puts this folder on LD_LIBRARY_PATH.
CONTAINER_DRIVER_DIR = "/usr/local/nvidia"
CONTAINER_DRIVER_LIBS = f"{CONTAINER_DRIVER_DIR}/lib64"
# The driver's nodes every CUDA process opens, besides the GPUs' own /dev/nvidia<N>.
SHARED_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
# The user-space driver libraries CUDA and NVML load (the NVIDIA runtime's "compute" and "utility" sets).
DRIVER_LIBRARY = re.compile(
    r"^lib(cuda|cudadebugger|nvidia-(ml|ptxjitcompiler|nvvm|gpucomp|cfg|opencl|allocator|nvjitlink))\.so"
)


@dataclass(frozen=True)
class GpuAccess:
    """What a cuda cell's container is given for its GPUs, and a line saying how."""

    mode: str  # "runtime" or "devices"
    device_requests: tuple[Any, ...] = ()
    # "HOST:CONTAINER:rwm" strings, as containers.create(devices=...) takes them.
    devices: tuple[str, ...] = ()
    # host path -> container path, each mounted read-only.
    mounts: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def create_options(self) -> dict[str, Any]:
        """The containers.create() options this access adds (devices, device requests, read-only mounts)."""
        import docker.types

        options: dict[str, Any] = {}
        if self.device_requests:
            options["device_requests"] = list(self.device_requests)
        if self.devices:
            options["devices"] = list(self.devices)
        if self.mounts:
            options["mounts"] = [
                docker.types.Mount(target, source, type="bind", read_only=True)
                for source, target in self.mounts.items()
            ]
        return options


def runtime_access(gpu_ids: list[int]) -> GpuAccess:
    import docker.types

    request = docker.types.DeviceRequest(device_ids=[str(gpu) for gpu in gpu_ids], capabilities=[["gpu"]])
    ids = ",".join(map(str, gpu_ids))
    return GpuAccess(
        "runtime",
        device_requests=(request,),
        env={GPU_ACCESS_ENV: f"runtime: the engine's nvidia runtime, GPUs {ids}"},
        description=f"runtime (the engine's nvidia runtime, GPUs {ids})",
    )


def device_nodes(gpu_ids: list[int], dev: Path = Path("/dev")) -> list[str]:
    """The device nodes a container needs for exactly `gpu_ids`: theirs and the driver's shared ones.

    A missing GPU node is a ConfigurationError (the cell would run on no GPU or another one); missing
    shared nodes are left out (nvidia-uvm-tools and the caps exist on some drivers only), except
    nvidiactl, without which no CUDA call works.
    """
    nodes = []
    for gpu in gpu_ids:
        node = dev / f"nvidia{gpu}"
        if not node.exists():
            raise ConfigurationError(
                f"GPU {gpu}: {node} does not exist on this host; is the NVIDIA driver loaded (nvidia-smi)?"
            )
        nodes.append(node)
    if not (dev / "nvidiactl").exists():
        raise ConfigurationError(f"{dev / 'nvidiactl'} does not exist: the NVIDIA driver is not loaded")
    nodes += [dev / name for name in SHARED_NODES if (dev / name).exists()]
    caps = dev / "nvidia-caps"
    if caps.is_dir():
        nodes += sorted(node for node in caps.iterdir() if node.name.startswith("nvidia-cap"))
    return [f"{node}:{node}:rwm" for node in nodes]


def ldconfig_library(name: str) -> Path | None:
    """Where the dynamic linker finds `name` on this host (`ldconfig -p`), or None."""
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = []
    for line in listing.splitlines():
        # "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"
        soname, _, rest = line.strip().partition(" ")
        flags, arrow, path = rest.partition(" => ")
        if soname == name and arrow:
            found.append((("x86-64" in flags or "AArch64" in flags), Path(path)))
    if found:
        # The 64-bit library first: a host may keep the 32-bit one beside it.
        return sorted(found, key=lambda item: not item[0])[0][1]
    return None


def driver_mounts(driver_dir: str | None, libcuda: Path | None) -> tuple[dict[str, str], str]:
    """Read-only mounts that give a container the host's driver libraries, and where they came from.

    `driver_dir` (the matrix's) is mounted whole at /usr/local/nvidia: it must hold lib64/ or lib/ with
    libcuda.so.1. Otherwise the libraries next to the host's libcuda.so.1 (`libcuda`) that belong to the
    same driver version are mounted one by one into /usr/local/nvidia/lib64, each under its real name and
    under every link name the host gives it (libcuda.so.1 -> libcuda.so.580.95.05), since a mount cannot
    make a link.
    """
    if driver_dir:
        folder = Path(driver_dir)
        if not any((folder / sub / "libcuda.so.1").exists() for sub in ("lib64", "lib")):
            raise ConfigurationError(
                f"image.driver_dir {driver_dir}: no lib64/libcuda.so.1 or lib/libcuda.so.1 in it; name the "
                "folder that holds the NVIDIA driver's user-space libraries (as /usr/local/nvidia on "
                "Kubernetes GPU nodes), or leave driver_dir out to let the harness find them"
            )
        return {str(folder): CONTAINER_DRIVER_DIR}, f"driver folder {folder}"
    if libcuda is None:
        raise ConfigurationError(
            "no libcuda.so.1 on this host (ldconfig -p): install the NVIDIA driver, name its folder with "
            "image.driver_dir, or use image.gpus: runtime on an engine with the NVIDIA container runtime"
        )
    real = libcuda.resolve()
    version = real.name.split(".so.", 1)[1] if ".so." in real.name else ""
    folder = real.parent
    mounts: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if not DRIVER_LIBRARY.match(entry.name):
            continue
        target = entry.resolve()
        # Only this driver's libraries: a folder may hold an older driver's leftovers.
        if not target.is_file() or (version and not target.name.endswith(f".so.{version}")):
            continue
        mounts[str(entry)] = f"{CONTAINER_DRIVER_LIBS}/{entry.name}"
    return mounts, f"{len(mounts)} driver libraries of {folder} (driver {version or 'unknown'})"


def devices_access(
    gpu_ids: list[int], driver_dir: str | None, dev: Path = Path("/dev"), libcuda: Path | None = None
) -> GpuAccess:
    """The harness's own GPU access: `gpu_ids`' nodes and the driver's libraries, read-only."""
    nodes = device_nodes(gpu_ids, dev)
    if driver_dir is None and libcuda is None:
        # Kubernetes GPU nodes and the lent GPU machines keep the driver in /usr/local/nvidia.
        conventional = Path(CONTAINER_DRIVER_DIR)
        if (conventional / "lib64" / "libcuda.so.1").exists():
            driver_dir = str(conventional)
        else:
            libcuda = ldconfig_library("libcuda.so.1")
    mounts, source = driver_mounts(driver_dir, libcuda)
    ids = ",".join(map(str, gpu_ids))
    description = f"devices (harness: {len(nodes)} device nodes for GPUs {ids}; {source}, read-only)"
    return GpuAccess(
        "devices",
        devices=tuple(nodes),
        mounts=mounts,
        env={
            "LD_LIBRARY_PATH": f"{CONTAINER_DRIVER_LIBS}:{CONTAINER_DRIVER_DIR}/lib",
            GPU_ACCESS_ENV: description,
        },
        description=description,
    )


def gpu_access(
    requested: str, gpu_ids: list[int], driver_dir: str | None, runtimes: Iterable[str]
) -> GpuAccess:
    """What a cuda cell on `gpu_ids` is given, for the matrix's `image.gpus` on an engine with `runtimes`."""
    if gpu_access_mode(requested, runtimes) == "runtime":
        return runtime_access(gpu_ids)
    return devices_access(gpu_ids, driver_dir)
