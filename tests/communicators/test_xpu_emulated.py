"""The XPU communicator's own logic, emulated on cpu/gloo: no Intel GPU is needed, and none is used.

Every test here is named `..._emulated` and records the property emulated=xpu-on-gloo (junit XML and
the report), so a CPU run can never be mistaken for XPU coverage. Real XPU cells run test_collectives.py.
"""

from __future__ import annotations

import pytest
import torch
from comm_test_data import (
    SIZE_PATTERNS,
    assert_equal,
    case_name,
    cases,
    rank_input,
    shape_with,
    sizes_for,
    with_layout,
)

from communicators import All2AllBackendFallbackWarning, XpuCommunicator


def _emulated_xpu(dist_env) -> XpuCommunicator:
    communicator = XpuCommunicator(dist_env.device, emulated=True)
    assert communicator.emulated and communicator.platform == "xpu"
    return communicator


@pytest.mark.parametrize("pattern", SIZE_PATTERNS)
def test_uneven_collectives_emulated(dist_env, xpu_emulation, pattern):
    communicator = _emulated_xpu(dist_env)
    rank, world_size = dist_env.rank, dist_env.world_size
    sizes = sizes_for(pattern, world_size)
    for seed, (dtype, dim, layout) in enumerate(cases()):
        case = case_name(dtype, dim, layout, f"sizes={sizes} ({xpu_emulation})")
        mine = rank_input(shape_with(sizes[rank], dim), dtype, rank, seed)
        gathered = communicator.all_gatherv(with_layout(mine, layout), dim=dim, sizes=sizes)
        expected = torch.cat(
            [rank_input(shape_with(s, dim), dtype, r, seed) for r, s in enumerate(sizes)], dim
        )
        assert_equal(gathered, expected, f"all_gatherv {case}")

        full_shape = shape_with(sum(sizes), dim)
        scattered = communicator.reduce_scatterv(
            with_layout(rank_input(full_shape, dtype, rank, seed), layout), dim=dim, sizes=sizes
        )
        total = sum(rank_input(full_shape, dtype, r, seed) for r in range(world_size))
        assert_equal(scattered, total.split(sizes, dim=dim)[rank], f"reduce_scatterv {case}")
    communicator.destroy()


def test_gather_and_all2all_emulated(dist_env, xpu_emulation):
    communicator = _emulated_xpu(dist_env)
    rank, world_size = dist_env.rank, dist_env.world_size
    x = rank_input((2, 3), torch.bfloat16, rank, 7)
    out = communicator.gather(x, dst=world_size - 1, dim=0)
    if rank == world_size - 1:
        assert_equal(
            out, torch.cat([rank_input((2, 3), torch.bfloat16, r, 7) for r in range(world_size)]), "gather"
        )
    else:
        assert out is None

    sizes = sizes_for("uneven_with_zeros", world_size)
    hidden = rank_input((sizes[rank], 4), torch.bfloat16, rank, 8)
    ids = rank_input((sizes[rank], 2), torch.int64, rank, 9)
    got_hidden, got_weights, got_ids = communicator.dispatch(hidden, ids.float(), ids, sizes)
    all_ids = torch.cat([rank_input((s, 2), torch.int64, r, 9) for r, s in enumerate(sizes)])
    assert_equal(got_ids, all_ids, "dispatch ids")
    assert_equal(got_weights, all_ids.float(), "dispatch weights")
    assert_equal(communicator.combine(got_hidden, sizes), hidden * world_size, "combine")
    communicator.destroy()


def test_cuda_only_backend_falls_back_on_xpu_emulated(dist_env, xpu_emulation):
    with pytest.warns(All2AllBackendFallbackWarning, match="'deepep_low_latency' is not available on xpu"):
        communicator = XpuCommunicator(dist_env.device, emulated=True, all2all_backend="deepep_low_latency")
    assert communicator.all2all_backend == "allgather_reducescatter"
    communicator.destroy()


def test_emulation_needs_a_cpu_device_emulated(dist_env, xpu_emulation):
    with pytest.raises(ValueError, match="emulated XpuCommunicator runs on the cpu over gloo"):
        XpuCommunicator("xpu:0", emulated=True)
