"""Run inside a container by tests/docker: a small real cell (gloo all_reduce and all_gather across ranks)."""

import torch
import torch.distributed as dist


def test_all_reduce_sums_every_rank(dist_env):
    tensor = torch.full((8,), float(dist_env.rank + 1))
    dist.all_reduce(tensor)
    assert tensor.tolist() == [float(sum(range(1, dist_env.world_size + 1)))] * 8


def test_all_gather_orders_by_rank(dist_env):
    gathered = [torch.empty(2) for _ in range(dist_env.world_size)]
    dist.all_gather(gathered, torch.full((2,), float(dist_env.rank)))
    assert [int(part[0]) for part in gathered] == list(range(dist_env.world_size))
