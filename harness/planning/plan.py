"""Which executor runs each cell on this host, or why the cell is skipped here.

Pure decisions from the cells, a `HostCapabilities`, (for Docker) an image check and (for Slurm) whether a
cluster answers, so tests can plan for hosts this machine is not. `--executor auto` (the default) takes each
device's `executor:` from the matrix where it names one; any other `--executor` overrides the matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from harness.common.errors import ConfigurationError, DockerUnavailableError, SlurmUnavailableError
from harness.config.model import Cell
from harness.host.probe import HostCapabilities
from harness.results.cell_result import CellResult

ExecutorChoice = Literal["auto", "local", "docker", "slurm"]
# How a cuda cell's container gets its GPUs (the matrix's image.gpus;
# harness/running/executors/gpu_access.py).
GPU_ACCESS_MODES = ("auto", "runtime", "devices")
# (image present, reason naming the tag and how to build it): DockerExecutor.image_status.
ImageCheck = Callable[[Cell], tuple[bool, str]]


@dataclass(frozen=True)
class PlannedCell:
    """A cell and its fate here: `executor` "local", "docker" or "slurm", or None with why it is skipped."""

    cell: Cell
    executor: str | None
    reason: str

    @property
    def gpus_needed(self) -> int:
        """This host's GPUs the cell takes: none for a Slurm job, whose nodes bring their own."""
        if self.executor == "slurm":
            return 0
        return self.cell.world_size if self.cell.device in ("cuda", "xpu") else 0

    def skipped_result(self) -> CellResult:
        """The result of a cell that cannot run here."""
        return CellResult.of_cell(self.cell, "skipped", self.reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.cell.id,
            "device": self.cell.device,
            "backend": self.cell.backend,
            "world_size": self.cell.world_size,
            "params": self.cell.params,
            "required": self.cell.required,
            "executor": self.executor,
            "status": "skipped" if self.executor is None else "planned",
            "reason": self.reason,
            "source": self.cell.source,
        }


def hardware_gap(cell: Cell, host: HostCapabilities) -> str:
    """Why this host lacks the devices the cell needs ("" when it has them), wherever the cell runs."""
    if cell.device == "cuda" and host.nvidia_gpu_count < cell.world_size:
        plural = "s" if cell.world_size > 1 else ""
        return f"needs {cell.world_size} CUDA GPU{plural}, this host has {host.nvidia_gpu_count}"
    if cell.device == "xpu":
        if host.intel_gpu_count == 0:
            return "no Intel GPU on this host"
        if host.intel_gpu_count < cell.world_size:
            return f"needs {cell.world_size} Intel GPUs, this host has {host.intel_gpu_count}"
    return ""


def local_gap(cell: Cell, host: HostCapabilities) -> str:
    """Why the cell cannot run directly on this host ("" when it can)."""
    gap = hardware_gap(cell, host)
    if gap:
        return gap
    torch = host.torch
    if not torch.get("torch"):
        return f"torch is not importable on this host ({torch.get('error') or 'not installed'})"
    if cell.device == "cpu" and not torch.get("gloo_available"):
        return f"torch {torch['torch']} on this host has no gloo backend"
    if cell.device == "cuda":
        if not torch.get("torch_cuda"):
            return f"torch {torch['torch']} on this host is a CPU build (no CUDA)"
        if not torch.get("nccl_available"):
            return f"torch {torch['torch']} on this host has no NCCL backend"
    if cell.device == "xpu":
        if not torch.get("xpu_available"):
            return "Intel GPU present but torch.xpu is not available (install torch from the XPU index)"
        if int(torch.get("xpu_device_count") or 0) < cell.world_size:
            return f"needs {cell.world_size} XPUs, torch.xpu sees {torch.get('xpu_device_count')}"
        if not torch.get("xccl_available"):
            return f"torch {torch['torch']} on this host has no xccl backend"
    return ""


def gpu_access_mode(requested: str, engine_runtimes: Iterable[str]) -> str:
    """"runtime" or "devices": what image.gpus `requested` means on an engine with these runtimes."""
    if requested not in GPU_ACCESS_MODES:
        raise ConfigurationError(f"image.gpus {requested!r}: use one of {', '.join(GPU_ACCESS_MODES)}")
    if requested != "auto":
        return requested
    return "runtime" if "nvidia" in set(engine_runtimes) else "devices"


def _gpu_note(cell: Cell, host: HostCapabilities) -> str:
    """"; GPUs: ..." for a cuda cell that runs in Docker: which access `auto` picked, and why."""
    if cell.device != "cuda" or cell.image is None:
        return ""
    mode = gpu_access_mode(cell.image.gpus, host.docker_runtimes)
    how = {
        "runtime": "the engine's nvidia runtime",
        "devices": "device nodes and driver libraries passed by the harness",
    }[mode]
    picked = f"image.gpus auto: the engine {'has' if mode == 'runtime' else 'has no'} nvidia runtime"
    return f"; GPUs: {mode} ({how}{'; ' + picked if cell.image.gpus == 'auto' else ''})"


def oversubscription_warnings(planned: Iterable[PlannedCell], cores: int) -> list[str]:
    """One line per cell that will run here with more ranks than the host has cores: the ranks then share
    cores, run slower and may hit test timeouts set on a larger machine."""
    return [
        f"warning: {p.cell.id} runs {p.cell.world_size} ranks on {cores} core{'s' if cores != 1 else ''}: "
        "they share cores (slower; raise test_timeout or drop the cell here if tests time out)"
        for p in planned
        if p.executor is not None and p.cell.world_size > cores
    ]


def plan_cells(
    cells: Iterable[Cell],
    host: HostCapabilities,
    choice: ExecutorChoice = "auto",
    image_check: ImageCheck | None = None,
    slurm_gap: str = "no Slurm cluster was asked",
) -> list[PlannedCell]:
    """Decide every cell's executor; `--executor docker` without an engine is a DockerUnavailableError,
    `--executor slurm` without a cluster (`slurm_gap`, "" when one answers) a SlurmUnavailableError."""
    if choice == "docker" and not host.docker_available:
        raise DockerUnavailableError(
            f"--executor docker: {host.docker_reason or 'no Docker engine answers'}.\n"
            "Start an engine (e.g. `bash .ci/docker-engine.sh`) or use --executor auto|local."
        )
    if choice == "slurm" and slurm_gap:
        raise SlurmUnavailableError(
            f"--executor slurm: {slurm_gap}.\n"
            "Run the harness where Slurm's commands reach a cluster (a login node; "
            "`bash .ci/slurm-cluster.sh` starts a one-host test cluster), or use another --executor."
        )
    return [_plan_one(cell, host, _choice_for(cell, choice), image_check, slurm_gap) for cell in cells]


def _choice_for(cell: Cell, choice: ExecutorChoice) -> ExecutorChoice:
    """The command line's choice, or under `auto` the device's `executor:` in the matrix."""
    if choice == "auto" and cell.executor in ("local", "docker", "slurm"):
        return cell.executor  # type: ignore[return-value]
    return choice


def _plan_one(
    cell: Cell, host: HostCapabilities, choice: ExecutorChoice, image_check: ImageCheck | None, slurm_gap: str
) -> PlannedCell:
    if choice == "slurm":
        # The cluster's nodes have the devices, not this host: only whether Slurm answers is known here.
        if slurm_gap:
            return PlannedCell(cell, None, f"the matrix says executor: slurm, but {slurm_gap}")
        return PlannedCell(cell, "slurm", f"a Slurm job of {cell.nodes} node(s)")
    if choice == "docker" and not host.docker_available:
        return PlannedCell(cell, None, f"the matrix says executor: docker, but {host.docker_reason}")
    if choice in ("auto", "docker"):
        gap = hardware_gap(cell, host)
        if choice == "docker":
            if gap:
                return PlannedCell(cell, None, gap)
            if cell.image is None:
                add = f"add `image: {{}}` under devices.{cell.device} for the stock image"
                return PlannedCell(cell, None, f"device {cell.device} has no `image:` in the matrix ({add})")
            present, image_reason = image_check(cell) if image_check else (False, "")
            note = "image present" if present else f"image will be built first ({image_reason})"
            return PlannedCell(cell, "docker", note + _gpu_note(cell, host))
        if host.docker_available and cell.image is not None and not gap and image_check is not None:
            present, image_reason = image_check(cell)
            if present:
                return PlannedCell(cell, "docker", (image_reason or "image present") + _gpu_note(cell, host))
            docker_note = f"no Docker image ({image_reason})"
        else:
            docker_note = f"Docker: {host.docker_reason}" if not host.docker_available else ""
        local = local_gap(cell, host)
        if local:
            return PlannedCell(cell, None, local)
        return PlannedCell(cell, "local", f"on the host{'; ' + docker_note if docker_note else ''}")
    local = local_gap(cell, host)
    return PlannedCell(cell, None, local) if local else PlannedCell(cell, "local", "on the host")
