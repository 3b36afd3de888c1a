"""Where ranks sit among a cell's nodes: the same answer from dist_env, torchrun's variables and the host.

Runs in every cell; the multi-node cells (ids ending -n<nodes>) are where it matters.
"""

from __future__ import annotations

import os
import socket

import torch.distributed as dist

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK")


def test_ranks_are_laid_out_over_nodes_as_under_torchrun(dist_env):
    mine = {
        "rank": dist_env.rank,
        "node_rank": dist_env.node_rank,
        "local_rank": dist_env.local_rank,
        "local_world_size": dist_env.local_world_size,
        "nodes": dist_env.nodes,
        # A host as NCCL tells hosts apart: its name, or the host id a node presents instead.
        "host": (socket.gethostname(), os.environ.get("NCCL_HOSTID")),
        "device_index": dist_env.device.index,
        "variables": {name: os.environ.get(name) for name in TORCHRUN_VARIABLES},
        "master": (os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")),
        "emulated": os.environ.get("HARNESS_NODES_EMULATED") == "1",
    }
    everyone = [None] * dist_env.world_size
    dist.all_gather_object(everyone, mine)

    per_node = dist_env.world_size // dist_env.nodes
    assert dist_env.local_world_size == per_node
    for rank, seen in enumerate(everyone):
        assert seen["rank"] == rank
        assert (seen["node_rank"], seen["local_rank"]) == (rank // per_node, rank % per_node), seen
        expected = [rank, dist_env.world_size, rank % per_node, per_node, rank // per_node]
        assert seen["variables"] == {
            name: str(v) for name, v in zip(TORCHRUN_VARIABLES, expected, strict=True)
        }, seen
        # Accelerator ranks pick their device by local rank (each node sees its own devices from 0).
        assert seen["device_index"] in (None, seen["local_rank"]), seen
    assert len({str(seen["master"]) for seen in everyone}) == 1, "ranks disagree on MASTER_ADDR:MASTER_PORT"
    hosts_of_node = [{s["host"] for s in everyone if s["node_rank"] == n} for n in range(dist_env.nodes)]
    assert all(len(hosts) == 1 for hosts in hosts_of_node), (
        f"ranks of one node on several hosts: {hosts_of_node}"
    )
    if dist_env.nodes > 1 and everyone[0]["emulated"]:
        assert len({s["host"][0] for s in everyone}) == 1, "emulated nodes run on this one host"
    else:
        # Docker's nodes share their network namespace's hostname and each present a host id of their own.
        distinct_hosts = len(set().union(*hosts_of_node))
        assert distinct_hosts == dist_env.nodes, f"each node is a host of its own: {hosts_of_node}"
