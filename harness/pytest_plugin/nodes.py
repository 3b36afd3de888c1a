"""Where a rank sits among a cell's nodes, and what a rank or node process does about it.

A cell of world size W over N nodes runs W / N ranks per node; rank r is local rank r % (W / N) of node
r // (W / N), as under torchrun. Two ways to run the nodes:

- emulated (`--dist-nodes N` alone): every node's ranks are forked here, on one host. Each node's ranks see
  only that node's share of the GPUs, and on NCCL each node presents its own host identity (`NCCL_HOSTID`),
  so traffic between nodes takes NCCL's network transport, as between real hosts. On gloo, nodes are groups
  of ranks only.
- one node of several (`--dist-nodes N --dist-node-rank K`, a container per node): only node K's ranks are
  forked here; every rank joins through the TCPStore that node 0's pytest process serves at
  MASTER_ADDR:MASTER_PORT, under a key per test that every node derives alike.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.common.contract import NODES_EMULATED_ENV

if TYPE_CHECKING:
    from harness.pytest_plugin.settings import DistSettings

# The variables that limit a process to some of the host's GPUs, by device.
VISIBLE_DEVICES_ENV = {"cuda": "CUDA_VISIBLE_DEVICES", "xpu": "ZE_AFFINITY_MASK"}
DEFAULT_MASTER_ADDR = "127.0.0.1"


@dataclass(frozen=True)
class NodePlace:
    """One rank's place: its node, its index among that node's ranks, and the node layout."""

    rank: int
    world_size: int
    node_rank: int
    local_rank: int
    local_world_size: int
    nodes: int


def place_of(rank: int, world_size: int, nodes: int) -> NodePlace:
    """Rank `rank`'s place when `world_size` ranks are split evenly over `nodes` nodes."""
    local_world_size = world_size // nodes
    return NodePlace(
        rank, world_size, rank // local_world_size, rank % local_world_size, local_world_size, nodes
    )


def torchrun_env(place: NodePlace, master_addr: str, master_port: int) -> dict[str, str]:
    """The variables torchrun gives a rank, so code written for torchrun finds its place the same way."""
    return {
        "RANK": str(place.rank),
        "WORLD_SIZE": str(place.world_size),
        "LOCAL_RANK": str(place.local_rank),
        "LOCAL_WORLD_SIZE": str(place.local_world_size),
        "NODE_RANK": str(place.node_rank),
        "GROUP_RANK": str(place.node_rank),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
    }


def emulated_node_env(place: NodePlace, device: str, environ: dict[str, str]) -> dict[str, str]:
    """What makes one host's ranks look like `place.nodes` hosts: a node's GPUs and, on NCCL, its host id.

    `environ` is the cell's environment: its visible-devices list (from the executor) is split among the
    nodes in order; without one, devices 0..world_size-1 are.
    """
    if place.nodes == 1:
        return {}
    env = {NODES_EMULATED_ENV: "1"}
    if device == "cuda":
        # NCCL tells hosts apart by hostname and boot id, both shared here; a host id per node overrides them.
        env["NCCL_HOSTID"] = f"{socket.gethostname()}-node{place.node_rank}"
    variable = VISIBLE_DEVICES_ENV.get(device)
    if variable:
        visible = [d for d in environ.get(variable, "").split(",") if d.strip()]
        visible = visible or [str(index) for index in range(place.world_size)]
        first = place.node_rank * place.local_world_size
        env[variable] = ",".join(visible[first : first + place.local_world_size])
    return env


def enter_node(settings: DistSettings, rank: int) -> NodePlace:
    """In a freshly forked rank, before its process group or device exists: set its node's environment."""
    place = place_of(rank, settings.world_size, settings.nodes)
    os.environ.update(torchrun_env(place, settings.master_addr, settings.master_port))
    if settings.node_rank is None:
        os.environ.update(emulated_node_env(place, settings.device, dict(os.environ)))
    return place


def ranks_of_node(settings: DistSettings) -> range:
    """The global ranks this pytest process forks: all of them, or those of its node."""
    if settings.node_rank is None:
        return range(settings.world_size)
    local = settings.world_size // settings.nodes
    return range(settings.node_rank * local, (settings.node_rank + 1) * local)


def serve_node_store(settings: DistSettings) -> Any:
    """On node 0 of several: the TCPStore every node's ranks join through; None elsewhere.

    It lives as long as this pytest process (its server thread belongs to it, not to forked children).
    """
    if settings.node_rank != 0:
        return None
    import torch.distributed as dist

    return dist.TCPStore(
        "0.0.0.0",
        settings.master_port,
        is_master=True,
        wait_for_workers=False,
        timeout=_store_timeout(settings),
    )


def rendezvous_store(settings: DistSettings, where: str) -> Any:
    """The store a rank joins on: a FileStore at path `where`, or node 0's TCPStore under prefix `where`."""
    import torch.distributed as dist

    if settings.node_rank is None:
        return dist.FileStore(where, settings.world_size)
    client = dist.TCPStore(
        settings.master_addr, settings.master_port, is_master=False, timeout=_store_timeout(settings)
    )
    return dist.PrefixStore(where, client)


def _store_timeout(settings: DistSettings) -> Any:
    from datetime import timedelta

    return timedelta(seconds=settings.timeout_s)


def node_options(
    nodes: int, node_rank: int | None, world_size: int, environ: dict[str, str]
) -> dict[str, Any]:
    """DistSettings' node fields, from the options and MASTER_ADDR/MASTER_PORT; ValueError when bad."""
    if world_size % nodes:
        raise ValueError(
            f"--dist-world-size {world_size} does not split evenly over --dist-nodes {nodes}; "
            f"use a world size that is a multiple of {nodes}"
        )
    if node_rank is not None and node_rank >= nodes:
        raise ValueError(f"--dist-node-rank {node_rank} is not a node of {nodes}; use 0 to {nodes - 1}")
    port_text = environ.get("MASTER_PORT", "")
    if node_rank is not None and not port_text:
        raise ValueError(
            "--dist-node-rank needs MASTER_ADDR and MASTER_PORT: the address and port of node 0, where its "
            "pytest serves the ranks' store"
        )
    try:
        port = int(port_text) if port_text else _free_port()
    except ValueError:
        raise ValueError(f"MASTER_PORT={port_text!r} is not a port number") from None
    return {
        "nodes": nodes,
        "node_rank": node_rank,
        "master_addr": environ.get("MASTER_ADDR") or DEFAULT_MASTER_ADDR,
        "master_port": port,
    }


def _free_port() -> int:
    """A port free now, for ranks' own env:// rendezvous when the cell names none."""
    with socket.socket() as probe:
        probe.bind((DEFAULT_MASTER_ADDR, 0))
        return probe.getsockname()[1]
