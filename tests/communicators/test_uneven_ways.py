"""Every way of building an uneven all-gather and reduce-scatter (communicators/uneven_rows.py) is exact.

Distributed: each body runs on every rank, at the run's world size and device (on the CPU the ways run over
gloo, where point-to-point exchanges are not grouped; the collectives and the data layout are the same).
The NCCL communicator picks among these ways by size, so each must be right for every pattern of sizes,
zero-size ranks included, whichever one a size selects.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
import torch
from comm_test_data import SIZE_PATTERNS, assert_equal, rank_input, sizes_for

from communicators import uneven_rows
from communicators.group_calls import GroupCalls
from communicators.tensor_layout import row_split

ROW_SHAPE = (3, 2)


@contextlib.contextmanager
def group_calls(dist_env) -> Iterator[GroupCalls]:
    """The group's calls, with the peer workspace they may map released afterwards (rank workers outlive
    a test in reuse mode). A context in the body: fixtures run in the pytest process, not on the ranks."""
    calls = GroupCalls(dist_env.group)
    try:
        yield calls
    finally:
        calls.peer_workspace.release()


def _patterns(world_size: int) -> list[list[int]]:
    """The shared size patterns plus the bench's: shares in proportion to rank + 1, and mildly uneven."""
    linear = [5 * (rank + 1) for rank in range(world_size)]
    mild = [2 * (world_size - 1) + rank for rank in range(world_size)]
    reversed_linear = linear[::-1]
    return [sizes_for(p, world_size) for p in SIZE_PATTERNS] + [linear, mild, reversed_linear]


def _ways(table: dict, dist_env, calls: GroupCalls, lists: bool = False) -> list[str]:
    """The ways that run here (`ways_that_run`), less the grouped ones on gloo: they are torch's uneven
    list forms, which gloo lacks (the list way of that name is grouped broadcasts, which it has). On the
    CPU every rank agrees that peer memory is unusable."""
    runnable = uneven_rows.ways_that_run(
        table, dist_env.world_size, calls.peer_workspace.usable(dist_env.device)
    )
    return [name for name in runnable if lists or dist_env.backend != "gloo" or name != "grouped"]


def test_every_gather_way_returns_every_ranks_rows_in_order(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    with group_calls(dist_env) as calls:
        for seed, sizes in enumerate(_patterns(n)):
            split = row_split(tuple(sizes), n, rank)
            everyone = [
                rank_input((size, *ROW_SHAPE), torch.bfloat16, r, seed) for r, size in enumerate(sizes)
            ]
            expected = torch.cat(everyone)
            for name in _ways(uneven_rows.GATHER_WAYS, dist_env, calls):
                mine = everyone[rank].to(device)
                gathered = uneven_rows.GATHER_WAYS[name](mine, split, calls)
                assert_equal(gathered, expected, f"rank {rank}: gather way {name!r}, sizes {sizes}")
                assert_equal(mine, everyone[rank], f"rank {rank}: gather way {name!r} changed its input")


def test_every_scatter_way_returns_this_ranks_block_of_the_sum(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    with group_calls(dist_env) as calls:
        for seed, sizes in enumerate(_patterns(n)):
            split = row_split(tuple(sizes), n, rank)
            shape = (sum(sizes), *ROW_SHAPE)
            total = sum(rank_input(shape, torch.float32, r, seed) for r in range(n))
            for name in _ways(uneven_rows.SCATTER_WAYS, dist_env, calls):
                mine = rank_input(shape, torch.float32, rank, seed)
                scattered = uneven_rows.SCATTER_WAYS[name](mine.to(device), split, calls)
                case = f"rank {rank}: scatter way {name!r}, sizes {sizes}"
                assert_equal(scattered, total.split(sizes)[rank], case)
                assert scattered.is_contiguous(), f"{case}: the result is not contiguous"


def test_scatter_ways_leave_the_callers_input_as_it_was(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    with group_calls(dist_env) as calls:
        # Large enough for gloo's ring reduce, which writes into every rank's buffer.
        sizes = [4096 * (r + 1) for r in range(n)]
        split = row_split(tuple(sizes), n, rank)
        for name in _ways(uneven_rows.SCATTER_WAYS, dist_env, calls):
            original = rank_input((sum(sizes), *ROW_SHAPE), torch.float32, rank, 3)
            given = original.to(device)
            uneven_rows.SCATTER_WAYS[name](given, split, calls)
            assert_equal(given, original, f"rank {rank}: scatter way {name!r} wrote into its input")


def test_every_list_way_gathers_mixed_dtypes_with_one_split(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    with group_calls(dist_env) as calls:
        for seed, sizes in enumerate(_patterns(n)):
            split = row_split(tuple(sizes), n, rank)
            dtypes = (torch.bfloat16, torch.float32, torch.int64)
            everyone = [[rank_input((s, 4), dtype, r, seed) for dtype in dtypes] for r, s in enumerate(sizes)]
            for name in _ways(uneven_rows.LIST_GATHER_WAYS, dist_env, calls, lists=True):
                gathered = uneven_rows.LIST_GATHER_WAYS[name](
                    [t.to(device) for t in everyone[rank]], split, calls
                )
                for index, dtype in enumerate(dtypes):
                    expected = torch.cat([each[index] for each in everyone])
                    case = f"rank {rank}: list way {name!r}, tensor {index} ({dtype}), sizes {sizes}"
                    assert_equal(gathered[index], expected, case)


@pytest.mark.parametrize(
    ("world_size", "total", "peer_memory", "gather", "scatter"),
    [
        (2, 1 << 10, False, "grouped", "grouped"),
        (2, 1 << 30, False, "window", "window"),
        (4, 1 << 10, False, "grouped", "grouped"),
        (4, 1 << 30, False, "sequential", "grouped"),
        # A peer-memory entry takes over from its bound up where peer memory is usable, later NCCL
        # entries notwithstanding, and is passed over where it is not.
        (2, 1 << 10, True, "grouped", "grouped"),
        (2, 1 << 22, True, "peer_copy", "grouped"),
        (2, 1 << 30, True, "peer_copy", "window"),
        (4, 1 << 30, True, "sequential", "grouped"),
    ],
)
def test_the_policy_picks_by_world_size_bytes_and_peer_memory(
    world_size, total, peer_memory, gather, scatter
):
    policy = uneven_rows.UnevenPolicy(
        gather_two_ranks=((0, "grouped"), (1 << 20, "window"), (1 << 21, "peer_copy")),
        gather_more_ranks=((0, "grouped"), (1 << 20, "sequential")),
        scatter_two_ranks=((0, "grouped"), (1 << 25, "window")),
        scatter_more_ranks=((0, "grouped"),),
    )
    assert policy.gather_way(world_size, total, peer_memory) == gather
    assert policy.scatter_way(world_size, total, peer_memory) == scatter


def test_the_nccl_policy_names_only_ways_that_exist_and_always_has_one_that_runs():
    from communicators.cuda import NCCL_UNEVEN_POLICY

    tables = {
        "gather": uneven_rows.GATHER_WAYS,
        "scatter": uneven_rows.SCATTER_WAYS,
        "list": uneven_rows.LIST_GATHER_WAYS,
    }
    for collective, way in NCCL_UNEVEN_POLICY.ways():
        assert way in tables[collective], f"{collective} way {way!r} does not exist"
    for collective in tables:
        for kind, world_size in (("two_ranks", 2), ("more_ranks", 4)):
            first_bound, first_way = getattr(NCCL_UNEVEN_POLICY, f"{collective}_{kind}")[0]
            # Without peer memory the first entry is the way of the smallest sizes.
            assert first_bound == 0 and first_way not in uneven_rows.PEER_MEMORY_ONLY
            if world_size != 2:
                assert {w for _, w in getattr(NCCL_UNEVEN_POLICY, f"{collective}_{kind}")}.isdisjoint(
                    uneven_rows.TWO_RANKS_ONLY
                )


def test_peer_memory_is_usable_only_on_one_node_of_gpus_and_can_be_switched_off(dist_env, monkeypatch):
    # GPUs of one node reach each other (NVLink or PCIe on the hosts the cells run on); emulated nodes
    # (HARNESS_NODES_EMULATED, NCCL_HOSTID per node) must not, whatever the physical host allows.
    expected = dist_env.device.type == "cuda" and not os.environ.get("HARNESS_NODES_EMULATED")
    with group_calls(dist_env) as calls:
        assert calls.peer_workspace.usable(dist_env.device) == expected
    monkeypatch.setenv("COMM_HARNESS_PEER_MEMORY", "0")
    assert not GroupCalls(dist_env.group).peer_workspace.usable(dist_env.device)


def test_the_peer_workspace_grows_and_maps_again_after_release(dist_env):
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    with group_calls(dist_env) as calls:
        if not calls.peer_workspace.usable(device):
            pytest.skip("peer memory needs every rank's GPU on one node")
        # 8 rows fit the first mapping; 64 Ki rows of 6 floats need a larger one (grown while mapped); then
        # the workspace is released, and 8 rows map it again.
        for count in (8, 1 << 16, 8):
            sizes = [count + r for r in range(n)]
            split = row_split(tuple(sizes), n, rank)
            everyone = [
                rank_input((size, *ROW_SHAPE), torch.float32, r, count) for r, size in enumerate(sizes)
            ]
            gathered = uneven_rows.GATHER_WAYS["peer_copy"](everyone[rank].to(device), split, calls)
            assert_equal(gathered, torch.cat(everyone), f"rank {rank}: peer copy of {sizes} rows")
            if count > 8:
                calls.peer_workspace.release()


def test_back_to_back_peer_calls_never_overwrite_what_a_peer_still_reads(dist_env):
    # Small peer calls end without a barrier: they alternate between the workspace's halves, and a call's
    # barrier is reached only after that rank's reads of the call before (peer_memory.py). Issued back to
    # back with no host wait, one rank's device held back in turn so that the other runs ahead, every
    # result must still be exact; a large call in between uses the whole workspace and must wait for the
    # small call before it.
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    with group_calls(dist_env) as calls:
        if not calls.peer_workspace.usable(device):
            pytest.skip("peer memory needs every rank's GPU on one node")
        sizes = [40 + 7 * r for r in range(n)]
        split = row_split(tuple(sizes), n, rank)
        large = [(40 << 20) // 4 // n + r for r in range(n)]
        large_split = row_split(tuple(large), n, rank)
        results, expected = [], []
        for step in range(24):
            if step % n == rank:
                torch.cuda._sleep(200_000)  # about 0.1 ms of this rank's device, before its next call
            everyone = [rank_input((s, *ROW_SHAPE), torch.float32, r, step) for r, s in enumerate(sizes)]
            mine, whole = everyone[rank].to(device), torch.cat(everyone)
            if step == 12:
                x = torch.full((large[rank],), float(step + rank), device=device)
                results.append(uneven_rows.GATHER_WAYS["peer_copy"](x, large_split, calls))
                expected.append(torch.cat([torch.full((c,), float(step + r)) for r, c in enumerate(large)]))
            elif step % 3 == 0:
                results.append(uneven_rows.LIST_GATHER_WAYS["peer_push"]([mine, mine.double()], split, calls))
                expected.append([whole, whole.double()])
            elif step % 3 == 1:
                full = (whole * (rank + 1)).to(device)
                results.append(uneven_rows.SCATTER_WAYS["peer_add"](full, split, calls))
                expected.append(whole[split.start : split.start + split.own] * (n * (n + 1) // 2))
            else:
                results.append(uneven_rows.GATHER_WAYS["peer_copy"](mine, split, calls))
                expected.append(whole)
        for step, (got, want) in enumerate(zip(results, expected, strict=True)):
            pairs = [(got, want)] if torch.is_tensor(got) else zip(got, want, strict=True)
            for index, (tensor, wanted) in enumerate(pairs):
                assert_equal(tensor, wanted, f"rank {rank}: step {step}, tensor {index}")


def test_ways_take_contiguous_rows_whose_size_one_dims_have_any_stride(dist_env):
    # torch calls a tensor contiguous whatever the stride of a dim of size 1: rows of shape (n, 1) with
    # stride (1, 7) are contiguous, and the ways that copy rows as bytes must view them with stride 1 (a view
    # as bytes needs it on the last dim; `view(-1)` of one element keeps the odd stride). Found twice by the
    # property tests on NCCL, where the shorter rank raised and the longer one waited in the all-gather:
    # first with rows of shape (n, 1), then with a single row of one element.
    rank, n, device = dist_env.rank, dist_env.world_size, dist_env.device
    for sizes in ([2 * (r + 1) for r in range(n)], [1 + r for r in range(n)]):
        split = row_split(tuple(sizes), n, rank)
        everyone = [rank_input((size, 1), torch.float16, r, 5) for r, size in enumerate(sizes)]
        storage = torch.zeros(7 * sizes[rank], dtype=torch.float16, device=device)
        mine = torch.as_strided(storage, (sizes[rank], 1), (1, 7))
        mine.copy_(everyone[rank].to(device))
        assert mine.is_contiguous() and mine.stride() == (1, 7)
        expected = torch.cat(everyone)
        with group_calls(dist_env) as calls:
            for name in _ways(uneven_rows.GATHER_WAYS, dist_env, calls):
                gathered = uneven_rows.GATHER_WAYS[name](mine, split, calls)
                assert_equal(gathered, expected, f"rank {rank}: gather way {name!r}, sizes {sizes}")
            for name in _ways(uneven_rows.LIST_GATHER_WAYS, dist_env, calls, lists=True):
                gathered = uneven_rows.LIST_GATHER_WAYS[name]([mine, mine], split, calls)
                for index in range(2):
                    where = f"rank {rank}: list way {name!r}, tensor {index}, sizes {sizes}"
                    assert_equal(gathered[index], expected, where)
