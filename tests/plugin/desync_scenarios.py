"""Ranks that disagree, on purpose: every test here fails, and its report must name the rank and the call.

Not collected by the suite (no test_ prefix): test_plugin_desync.py and test_plugin_desync_cuda.py run it in a
separate pytest and check the reports. Run it by hand to see (or keep) them, on any device:

    python -m pytest tests/plugin/desync_scenarios.py --dist-world-size 4 --dist-timeout 5 -rA
    python -m pytest tests/plugin/desync_scenarios.py --dist-device cuda --dist-world-size 2 --dist-timeout 20

The last rank (`world_size - 1`) is always the one that goes astray.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist


def _odd(dist_env) -> bool:
    return dist_env.rank == dist_env.world_size - 1


def _finish(dist_env) -> None:
    # On NCCL a call returns once enqueued: wait for the GPU, so that a collective that never matches hangs
    # here instead of letting the body end as if nothing happened.
    if dist_env.device.type == "cuda":
        torch.cuda.synchronize(dist_env.device)


def test_skips_a_collective(dist_env):
    t = torch.ones(8, 8, device=dist_env.device)
    dist.all_reduce(t)
    dist.all_reduce(t)
    if not _odd(dist_env):
        dist.all_reduce(t)  # all_reduce #3: the last rank skips it
    out = torch.empty(8 * dist_env.world_size, 8, device=dist_env.device)
    dist.all_gather_into_tensor(out, t)
    _finish(dist_env)


def test_reorders_two_collectives(dist_env):
    t = torch.ones(8, 8, device=dist_env.device)
    out = torch.empty(8 * dist_env.world_size, 8, device=dist_env.device)
    dist.all_reduce(t)
    if _odd(dist_env):
        dist.all_gather_into_tensor(out, t)
        dist.all_reduce(t)
    else:
        dist.all_reduce(t)  # all_reduce #2: the last rank gathers first
        dist.all_gather_into_tensor(out, t)
    _finish(dist_env)


def test_passes_another_shape(dist_env):
    dist.all_reduce(torch.ones(8, 8, device=dist_env.device))
    dist.all_reduce(torch.ones((8, 4) if _odd(dist_env) else (8, 8), device=dist_env.device))
    _finish(dist_env)


def test_passes_another_dtype(dist_env):
    dist.all_reduce(torch.ones(8, 8, device=dist_env.device))
    dtype = torch.float64 if _odd(dist_env) else torch.float32
    dist.all_reduce(torch.ones(8, 8, dtype=dtype, device=dist_env.device))
    _finish(dist_env)


def test_hangs_outside_any_collective(dist_env):
    dist.all_reduce(torch.ones(4, device=dist_env.device))
    if _odd(dist_env):
        time.sleep(600)  # the line the verdict must name
    dist.all_reduce(torch.ones(4, device=dist_env.device))
    _finish(dist_env)
