"""Every way of building an uneven all-gather and reduce-scatter (communicators/uneven_rows.py) is exact.

Distributed: each body runs on every rank, at the run's world size and device (on the CPU the ways run over
gloo, where point-to-point exchanges are not grouped; the collectives and the data layout are the same).
The NCCL communicator picks among these ways by size, so each must be right for every pattern of sizes,
zero-size ranks included, whichever one a size selects.
"""

from __future__ import annotations

import pytest
import torch
from comm_test_data import SIZE_PATTERNS, assert_equal, rank_input, sizes_for

from communicators import uneven_rows
from communicators.group_calls import GroupCalls
from communicators.tensor_layout import row_split

ROW_SHAPE = (3, 2)


def _patterns(world_size: int) -> list[list[int]]:
    """The shared size patterns plus the bench's: shares in proportion to rank + 1, and mildly uneven."""
    linear = [5 * (rank + 1) for rank in range(world_size)]
    mild = [2 * (world_size - 1) + rank for rank in range(world_size)]
    reversed_linear = linear[::-1]
    return [sizes_for(p, world_size) for p in SIZE_PATTERNS] + [linear, mild, reversed_linear]


def _ways(table: dict, dist_env) -> list[str]:
    """The ways that run here: the grouped ones are torch's uneven list forms, which gloo lacks."""
    return [
        name
        for name in table
        if (dist_env.world_size == 2 or name not in uneven_rows.TWO_RANKS_ONLY)
        and (dist_env.backend != "gloo" or name != "grouped")
    ]


def test_every_gather_way_returns_every_ranks_rows_in_order(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    calls = GroupCalls(dist_env.group)
    for seed, sizes in enumerate(_patterns(n)):
        split = row_split(tuple(sizes), n, rank)
        everyone = [rank_input((size, *ROW_SHAPE), torch.bfloat16, r, seed) for r, size in enumerate(sizes)]
        expected = torch.cat(everyone)
        for name in _ways(uneven_rows.GATHER_WAYS, dist_env):
            mine = everyone[rank].to(device)
            gathered = uneven_rows.GATHER_WAYS[name](mine, split, calls)
            assert_equal(gathered, expected, f"rank {rank}: gather way {name!r}, sizes {sizes}")
            assert_equal(mine, everyone[rank], f"rank {rank}: gather way {name!r} changed its input")


def test_every_scatter_way_returns_this_ranks_block_of_the_sum(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    calls = GroupCalls(dist_env.group)
    for seed, sizes in enumerate(_patterns(n)):
        split = row_split(tuple(sizes), n, rank)
        shape = (sum(sizes), *ROW_SHAPE)
        total = sum(rank_input(shape, torch.float32, r, seed) for r in range(n))
        for name in _ways(uneven_rows.SCATTER_WAYS, dist_env):
            mine = rank_input(shape, torch.float32, rank, seed)
            scattered = uneven_rows.SCATTER_WAYS[name](mine.to(device), split, calls)
            case = f"rank {rank}: scatter way {name!r}, sizes {sizes}"
            assert_equal(scattered, total.split(sizes)[rank], case)
            assert scattered.is_contiguous(), f"{case}: the result is not contiguous"


def test_scatter_ways_leave_the_callers_input_as_it_was(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    calls = GroupCalls(dist_env.group)
    # Large enough for gloo's ring reduce, which writes into every rank's buffer.
    sizes = [4096 * (r + 1) for r in range(n)]
    split = row_split(tuple(sizes), n, rank)
    for name in _ways(uneven_rows.SCATTER_WAYS, dist_env):
        original = rank_input((sum(sizes), *ROW_SHAPE), torch.float32, rank, 3)
        given = original.to(device)
        uneven_rows.SCATTER_WAYS[name](given, split, calls)
        assert_equal(given, original, f"rank {rank}: scatter way {name!r} wrote into its input")


def test_every_list_way_gathers_mixed_dtypes_with_one_split(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    calls = GroupCalls(dist_env.group)
    for seed, sizes in enumerate(_patterns(n)):
        split = row_split(tuple(sizes), n, rank)
        dtypes = (torch.bfloat16, torch.float32, torch.int64)
        everyone = [[rank_input((s, 4), dtype, r, seed) for dtype in dtypes] for r, s in enumerate(sizes)]
        for name, way in uneven_rows.LIST_GATHER_WAYS.items():
            if n != 2 and name in uneven_rows.TWO_RANKS_ONLY:
                continue
            gathered = way([t.to(device) for t in everyone[rank]], split, calls)
            for index, dtype in enumerate(dtypes):
                expected = torch.cat([each[index] for each in everyone])
                case = f"rank {rank}: list way {name!r}, tensor {index} ({dtype}), sizes {sizes}"
                assert_equal(gathered[index], expected, case)


@pytest.mark.parametrize(
    ("world_size", "total", "gather", "scatter"),
    [
        (2, 1 << 10, "grouped", "grouped"),
        (2, 1 << 30, "window", "window"),
        (4, 1 << 10, "grouped", "grouped"),
        (4, 1 << 30, "sequential", "grouped"),
    ],
)
def test_the_policy_picks_by_world_size_and_bytes(world_size, total, gather, scatter):
    policy = uneven_rows.UnevenPolicy(
        gather_two_ranks=((0, "grouped"), (1 << 20, "window")),
        gather_more_ranks=((0, "grouped"), (1 << 20, "sequential")),
        scatter_two_ranks=((0, "grouped"), (1 << 25, "window")),
        scatter_more_ranks=((0, "grouped"),),
    )
    assert policy.gather_way(world_size, total) == gather
    assert policy.scatter_way(world_size, total) == scatter
