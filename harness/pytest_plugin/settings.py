"""The plugin's settings, read once from the command line and handed to every rank."""

from __future__ import annotations

from dataclasses import dataclass

from harness.adapters.registry import DEFAULT_COMMUNICATOR
from harness.config.model import BACKEND_OF_DEVICE

# Reuse pays where per-test set-up is expensive: a CUDA/XPU context plus an NCCL/xccl communicator costs
# seconds, a gloo group tens of milliseconds. On CPU the isolation of a fresh fork is worth more.
REUSE_BY_DEFAULT: dict[str, bool] = {"cpu": False, "cuda": True, "xpu": True}


@dataclass(frozen=True)
class DistSettings:
    """What every distributed test of this session runs with."""

    device: str
    world_size: int
    timeout_s: float
    reuse: bool
    all2all_backend: str
    # Each rank's trace of its collectives, read on a failure or timeout (collective_trace.py).
    trace_collectives: bool = True
    # Ranks compare op, shapes and dtypes before every collective and fail at the first difference.
    check_collectives: bool = False
    communicator: str = DEFAULT_COMMUNICATOR  # the adapter the communicator fixture comes from
    # The world size is split evenly over `nodes` (harness/pytest_plugin/nodes.py). node_rank None: all nodes
    # are emulated here; else this process runs node `node_rank`'s ranks only.
    nodes: int = 1
    node_rank: int | None = None
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    # --dist-reuse check: every distributed test runs on fresh ranks and on the workers, outcomes compared.
    check_reuse: bool = False

    @property
    def local_world_size(self) -> int:
        return self.world_size // self.nodes

    @property
    def backend(self) -> str:
        return BACKEND_OF_DEVICE[self.device]

    def describe(self) -> str:
        """One line for the pytest header."""
        mode = "reuse (workers kept across tests)" if self.reuse else "fork (fresh ranks per test)"
        if self.check_reuse:
            mode = "check (each test on fresh ranks and on reuse workers, outcomes compared)"
        check = ", collectives checked across ranks" if self.check_collectives else ""
        nodes = ""
        if self.nodes > 1:
            where = "emulated here" if self.node_rank is None else f"this is node {self.node_rank}"
            nodes = f" over {self.nodes} nodes ({where})"
        return (
            f"comm-harness: device {self.device} ({self.backend}), world size {self.world_size}{nodes}, "
            f"{mode}, timeout {self.timeout_s:g} s per test{check}"
        )


def resolve_reuse(choice: str, device: str) -> bool:
    """`--dist-reuse auto|on|off|check` for this device (check keeps workers, and fresh ranks too)."""
    if choice == "auto":
        return REUSE_BY_DEFAULT[device]
    return choice in ("on", "check")
