"""What a test sees as `dist_env`: a `DistEnv` on each rank, a `PendingDistEnv` in the pytest process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DistEnv:
    """One rank's view of the distributed world the test body runs in."""

    rank: int
    world_size: int
    device: torch.device
    group: Any  # the default torch.distributed ProcessGroup
    backend: str
    # The rank's node (0..nodes-1) and its index there; its device is chosen by local_rank.
    node_rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    nodes: int = 1


class PendingDistEnv:
    """Stands in for `dist_env` in the pytest process, where no rank exists yet; each rank replaces it."""

    def __init__(self, nodeid: str) -> None:
        self._nodeid = nodeid

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(
            f"{self._nodeid}: dist_env.{name} was read in the pytest process. Only the test body runs on the "
            "ranks; a fixture that asks for dist_env (or communicator) gets this placeholder. Move the "
            "rank-specific set-up into the test body."
        )

    def __repr__(self) -> str:
        return "<dist_env: replaced on each rank>"


class PendingCommunicator(PendingDistEnv):
    """Stands in for `communicator` in the pytest process; each rank creates the real one."""

    def __repr__(self) -> str:
        return "<communicator: created on each rank>"
