"""What this host can run: cores, NVIDIA and Intel GPUs, a Docker engine, torch and its backends.

CUDA is never initialised in the harness process (rank workers are forked later and must stay fork-safe):
GPUs come from nvidia-smi, and torch facts from `python -m harness.host.fingerprint` in a subprocess.
Tests build a `HostCapabilities` by hand to fake hosts this machine is not (4 GPUs, Docker, ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.host.fingerprint import NvidiaGpu, query_nvidia_gpus

INTEL_PCI_VENDOR = "0x8086"


@dataclass(frozen=True)
class HostCapabilities:
    """The facts planning needs about one host."""

    cores: int
    nvidia_gpus: tuple[NvidiaGpu, ...] = ()
    nvidia_reason: str = ""
    intel_render_nodes: tuple[str, ...] = ()
    torch: dict[str, Any] = field(default_factory=dict)
    docker_available: bool = False
    docker_version: str = ""
    docker_reason: str = "not probed"
    # The engine's container runtimes ("runc", "nvidia", ...): whether cuda cells get GPUs through the
    # NVIDIA runtime or from the harness (image.gpus: auto).
    docker_runtimes: tuple[str, ...] = ()

    @property
    def nvidia_gpu_count(self) -> int:
        return len(self.nvidia_gpus)

    @property
    def intel_gpu_count(self) -> int:
        return len(self.intel_render_nodes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["nvidia_gpu_count"] = self.nvidia_gpu_count
        data["intel_gpu_count"] = self.intel_gpu_count
        return data


def count_cores() -> int:
    """Cores this process may run on (respects cgroup/affinity limits, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def find_intel_render_nodes(dri: Path = Path("/dev/dri"), sysfs: Path = Path("/sys/class/drm")) -> list[str]:
    """Render nodes (/dev/dri/renderD*) whose PCI vendor is Intel."""
    nodes = []
    for node in sorted(dri.glob("renderD*")):
        vendor_file = sysfs / node.name / "device" / "vendor"
        try:
            vendor = vendor_file.read_text().strip()
        except OSError:
            continue
        if vendor == INTEL_PCI_VENDOR:
            nodes.append(str(node))
    return nodes


def probe_torch(timeout_s: float = 120.0) -> dict[str, Any]:
    """torch facts from a subprocess, so neither torch nor CUDA is loaded into the harness."""
    command = [sys.executable, "-m", "harness.host.fingerprint"]
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        return json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
        return {"torch": None, "error": f"torch probe failed: {error}"}


def probe_docker(timeout_s: float = 3.0) -> tuple[bool, str, str, tuple[str, ...]]:
    """(engine answers, engine version, why not, its runtimes) through the Docker SDK with a short timeout."""
    try:
        import docker
    except ImportError:
        return False, "", "the docker Python package is not installed (pip install docker)", ()
    if not hasattr(docker, "from_env"):
        # The repository's docker/ folder (Dockerfiles) imports as a namespace package when the SDK is absent.
        return False, "", "the docker Python package is not installed (pip install docker)", ()
    try:
        client = docker.from_env(timeout=timeout_s)
    except Exception as error:
        reason = f"no Docker engine answers ({_first_line(error)}); start dockerd or set DOCKER_HOST"
        return False, "", reason, ()
    try:
        client.ping()
        version = client.version().get("Version", "")
        return True, version, "", engine_runtimes(client)
    except Exception as error:
        return False, "", f"the Docker engine does not answer ({_first_line(error)})", ()
    finally:
        client.close()


def engine_runtimes(client: Any) -> tuple[str, ...]:
    """The runtimes a Docker engine offers (`docker info`'s Runtimes), e.g. ("nvidia", "runc")."""
    try:
        return tuple(sorted((client.info().get("Runtimes") or {}).keys()))
    except Exception:  # an engine that cannot say has no runtime the harness could rely on
        return ()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def probe_host(*, docker: bool = True) -> HostCapabilities:
    """Probe this host; `docker=False` skips the engine check (reported as not probed)."""
    gpus, nvidia_reason = query_nvidia_gpus()
    docker_available, docker_version, docker_reason, runtimes = (
        probe_docker() if docker else (False, "", "not probed", ())
    )
    return HostCapabilities(
        cores=count_cores(),
        nvidia_gpus=tuple(gpus),
        nvidia_reason=nvidia_reason,
        intel_render_nodes=tuple(find_intel_render_nodes()),
        torch=probe_torch(),
        docker_available=docker_available,
        docker_version=docker_version,
        docker_reason=docker_reason,
        docker_runtimes=runtimes,
    )


def describe_host(host: HostCapabilities) -> list[tuple[str, str]]:
    """(what, finding) rows for `harness doctor`."""
    torch = host.torch
    gpus = ", ".join(f"{g.index}: {g.name} ({g.memory})" for g in host.nvidia_gpus)
    xpu = "yes" if torch.get("xpu_available") else "no"
    intel_nodes = ", ".join(host.intel_render_nodes) or "no Intel render node"
    docker = f"yes, {host.docker_version}" if host.docker_available else f"no: {host.docker_reason}"
    rows = [
        ("cores", str(host.cores)),
        ("NVIDIA GPUs", f"{host.nvidia_gpu_count} — {gpus}" if gpus else f"0 ({host.nvidia_reason})"),
        ("NVIDIA driver", host.nvidia_gpus[0].driver_version if host.nvidia_gpus else "-"),
        ("Intel GPUs", f"{host.intel_gpu_count} ({intel_nodes}); torch.xpu available: {xpu}"),
        ("Docker engine", docker),
        ("python", str(torch.get("python") or sys.version.split()[0])),
        ("torch", str(torch.get("torch") or f"not importable: {torch.get('error', '')}")),
        ("torch CUDA", str(torch.get("torch_cuda") or "none (CPU build)")),
        (
            "backends",
            ", ".join(
                f"{name} {'yes' if torch.get(f'{name}_available') else 'no'}"
                for name in ("gloo", "nccl", "xccl")
            ),
        ),
        ("NCCL", str(torch.get("nccl") or "-")),
        ("oneCCL", str(torch.get("oneccl") or "-")),
    ]
    if torch.get("error"):
        rows.append(("torch probe", torch["error"]))
    return rows
