"""Every collective of the platform's communicator against a reference each rank computes on its CPU.

Distributed: each test body runs on every rank (the `communicator` fixture of the comm-harness plugin),
at whatever world size and device the run has. Inside a body, one loop covers float32, bfloat16 and
int64, dims 0, 1 and -1, and contiguous and non-contiguous inputs; the assertion names the case.
"""

from __future__ import annotations

import pytest
import torch
from comm_test_data import (
    DTYPES,
    SIZE_PATTERNS,
    assert_equal,
    case_name,
    cases,
    rank_input,
    shape_with,
    sizes_for,
    with_layout,
)

from communicators import create_communicator


def _reference_sum(shape: tuple[int, ...], dtype: torch.dtype, world_size: int, seed: int) -> torch.Tensor:
    return sum(rank_input(shape, dtype, r, seed) for r in range(world_size))


def _gathered_reference(sizes: list[int], dtype: torch.dtype, dim: int, seed: int) -> torch.Tensor:
    return torch.cat([rank_input(shape_with(size, dim), dtype, r, seed) for r, size in enumerate(sizes)], dim)


def _own_slice(full: torch.Tensor, sizes: list[int], rank: int, dim: int) -> torch.Tensor:
    return full.split(sizes, dim=dim)[rank]


def test_all_reduce(communicator):
    rank, world_size = communicator.rank, communicator.world_size
    for seed, (dtype, _dim, layout) in enumerate(cases()):
        x = with_layout(rank_input((3, 4, 5), dtype, rank, seed, communicator.device), layout)
        out = communicator.all_reduce(x)
        assert_equal(out, _reference_sum((3, 4, 5), dtype, world_size, seed), case_name(dtype, 0, layout))


def test_all_gather_equal_sizes(communicator):
    rank, world_size = communicator.rank, communicator.world_size
    for seed, (dtype, dim, layout) in enumerate(cases()):
        x = with_layout(rank_input(shape_with(2, dim), dtype, rank, seed, communicator.device), layout)
        out = communicator.all_gather(x, dim=dim)
        assert_equal(
            out, _gathered_reference([2] * world_size, dtype, dim, seed), case_name(dtype, dim, layout)
        )


@pytest.mark.parametrize("pattern", SIZE_PATTERNS)
def test_all_gatherv_uneven_sizes(communicator, pattern):
    rank = communicator.rank
    sizes = sizes_for(pattern, communicator.world_size)
    for seed, (dtype, dim, layout) in enumerate(cases()):
        x = with_layout(
            rank_input(shape_with(sizes[rank], dim), dtype, rank, seed, communicator.device), layout
        )
        out = communicator.all_gatherv(x, dim=dim, sizes=sizes)
        case = case_name(dtype, dim, layout, f"sizes={sizes}")
        assert_equal(out, _gathered_reference(sizes, dtype, dim, seed), case)


@pytest.mark.parametrize("pattern", ["uneven_with_zeros", "equal"])
@pytest.mark.parametrize("dim", [0, -1])
def test_all_gatherv_of_a_list_gathers_each_tensor(communicator, dim, pattern):
    rank, device = communicator.rank, communicator.device
    sizes = sizes_for(pattern, communicator.world_size)
    # Mixed dtypes and trailing shapes, as in all2all dispatch (tokens, weights, ids, scales).
    specs = [((3, 4), torch.bfloat16), ((2,), torch.float32), ((2,), torch.int64), ((), torch.float32)]

    def shaped(size: int, trailing: tuple[int, ...]) -> tuple[int, ...]:
        return (size, *trailing) if dim == 0 else (*trailing, size)

    inputs = [
        with_layout(rank_input(shaped(sizes[rank], trailing), dtype, rank, i, device), "non-contiguous")
        for i, (trailing, dtype) in enumerate(specs)
    ]
    outputs = communicator.all_gatherv(inputs, dim=dim, sizes=sizes)
    assert isinstance(outputs, list) and len(outputs) == len(specs)
    for i, ((trailing, dtype), out) in enumerate(zip(specs, outputs, strict=True)):
        expected = torch.cat([rank_input(shaped(s, trailing), dtype, r, i) for r, s in enumerate(sizes)], dim)
        assert_equal(out, expected, f"list item {i} ({dtype}, trailing {trailing}) dim={dim} sizes={sizes}")


def test_reduce_scatter_equal_sizes(communicator):
    rank, world_size = communicator.rank, communicator.world_size
    for seed, (dtype, dim, layout) in enumerate(cases()):
        shape = shape_with(2 * world_size, dim)
        x = with_layout(rank_input(shape, dtype, rank, seed, communicator.device), layout)
        out = communicator.reduce_scatter(x, dim=dim)
        expected = _own_slice(_reference_sum(shape, dtype, world_size, seed), [2] * world_size, rank, dim)
        assert_equal(out, expected, case_name(dtype, dim, layout))


@pytest.mark.parametrize("pattern", SIZE_PATTERNS)
def test_reduce_scatterv_uneven_sizes(communicator, pattern):
    rank, world_size = communicator.rank, communicator.world_size
    sizes = sizes_for(pattern, world_size)
    for seed, (dtype, dim, layout) in enumerate(cases()):
        shape = shape_with(sum(sizes), dim)
        x = with_layout(rank_input(shape, dtype, rank, seed, communicator.device), layout)
        out = communicator.reduce_scatterv(x, dim=dim, sizes=sizes)
        expected = _own_slice(_reference_sum(shape, dtype, world_size, seed), sizes, rank, dim)
        assert_equal(out, expected, case_name(dtype, dim, layout, f"sizes={sizes}"))


def test_gather_returns_the_concatenation_on_dst_only(communicator):
    rank, world_size = communicator.rank, communicator.world_size
    for dst in sorted({0, world_size - 1}):
        for seed, (dtype, dim, layout) in enumerate(cases()):
            x = with_layout(rank_input(shape_with(2, dim), dtype, rank, seed, communicator.device), layout)
            out = communicator.gather(x, dst=dst, dim=dim)
            case = case_name(dtype, dim, layout, f"dst={dst}")
            if rank == dst:
                assert_equal(out, _gathered_reference([2] * world_size, dtype, dim, seed), case)
            else:
                assert out is None, f"{case}: rank {rank} is not dst but got a tensor"


def test_broadcast_from_first_and_last_rank(communicator):
    rank, world_size = communicator.rank, communicator.world_size
    for src in sorted({0, world_size - 1}):
        for seed, dtype in enumerate(DTYPES):
            x = with_layout(rank_input((3, 4, 5), dtype, rank, seed, communicator.device), "non-contiguous")
            out = communicator.broadcast(x, src=src)
            assert_equal(out, rank_input((3, 4, 5), dtype, src, seed), f"{dtype} src={src}")


def test_send_recv_around_a_ring(communicator):
    rank, world_size = communicator.rank, communicator.world_size
    if world_size == 1:
        pytest.skip("a ring needs two ranks or more")
    nxt, prev = (rank + 1) % world_size, (rank - 1) % world_size
    for seed, dtype in enumerate(DTYPES):
        x = with_layout(rank_input((3, 4, 5), dtype, rank, seed, communicator.device), "non-contiguous")
        # Even ranks send first and odd ranks receive first, so blocking sends cannot deadlock the ring; at an
        # odd size the last rank (even) sends to rank 0, which receives once its own send is taken.
        if rank % 2 == 0:
            communicator.send(x, dst=nxt)
            got = communicator.recv(x.shape, dtype, src=prev)
        else:
            got = communicator.recv(x.shape, dtype, src=prev)
            communicator.send(x, dst=nxt)
        assert_equal(got, rank_input((3, 4, 5), dtype, prev, seed), f"{dtype} from rank {prev}")


def test_barrier_then_all_reduce_sees_every_rank(communicator):
    communicator.barrier()
    ones = torch.ones(1, dtype=torch.int64, device=communicator.device)
    assert communicator.all_reduce(ones).item() == communicator.world_size


def test_bad_sizes_and_shapes_raise_before_any_collective(communicator):
    rank, world_size, device = communicator.rank, communicator.world_size, communicator.device
    x = torch.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match="one per rank"):
        communicator.all_gatherv(x, dim=0, sizes=[2] * (world_size + 1))
    wrong = [2] * world_size
    wrong[rank] = 1
    with pytest.raises(ValueError, match=rf"sizes\[{rank}\] is 1 but the tensor has 2"):
        communicator.all_gatherv(x, dim=0, sizes=wrong)
    with pytest.raises(ValueError, match="add up to"):
        communicator.reduce_scatterv(x, dim=0, sizes=[3] * world_size)
    with pytest.raises(ValueError, match="negative"):
        communicator.reduce_scatterv(x, dim=0, sizes=[-1] * world_size)
    with pytest.raises(ValueError, match="out of range"):
        communicator.all_gather(x, dim=2)
    with pytest.raises(ValueError, match="one length along dim"):
        communicator.all_gatherv([x, torch.zeros(3, 3, device=device)], dim=0)
    if world_size > 1:
        with pytest.raises(ValueError, match="divisible by the world size"):
            communicator.reduce_scatter(torch.zeros(world_size + 1, device=device), dim=0)
    if device.type != "cpu":
        with pytest.raises(ValueError, match="tensor is on cpu"):
            communicator.all_reduce(torch.zeros(2))
    # The group still works after every rejected call: nothing was half-sent.
    assert communicator.all_reduce(torch.ones(1, device=device)).item() == world_size


@pytest.mark.comm_harness_internals("it counts calls of _gather_rows, a comm-harness internal")
def test_a_list_gathers_in_as_many_collectives_as_the_platform_wants(communicator):
    rank, device = communicator.rank, communicator.device
    sizes = sizes_for("uneven_with_zeros", communicator.world_size)
    specs = [((8,), torch.bfloat16), ((2,), torch.float32), ((2,), torch.int64), ((), torch.float32)]
    inputs = [
        rank_input((sizes[rank], *trailing), dtype, rank, i, device)
        for i, (trailing, dtype) in enumerate(specs)
    ]
    gathered_shapes = []
    real_gather_rows = communicator._gather_rows

    def counting_gather_rows(rows, split):
        gathered_shapes.append(tuple(rows.shape))
        return real_gather_rows(rows, split)

    communicator._gather_rows = counting_gather_rows
    try:
        outputs = communicator.all_gatherv(inputs, dim=0, sizes=sizes)
    finally:
        del communicator._gather_rows
    for i, ((trailing, dtype), out) in enumerate(zip(specs, outputs, strict=True)):
        expected = torch.cat([rank_input((s, *trailing), dtype, r, i) for r, s in enumerate(sizes)])
        assert_equal(out, expected, f"list item {i}")
    if communicator.packs_row_lists:
        # gloo and xccl: the widest tensor alone, the other three as one byte buffer.
        assert len(gathered_shapes) == 2, gathered_shapes
    else:
        # NCCL: equal sizes (world size 1 here) go out as one coalesced all-gather for the list, uneven
        # ones as one coalesced all-gather of padded windows or one group of sends to every peer
        # (CudaCommunicator._gather_row_list); neither gathers tensor by tensor.
        assert gathered_shapes == []


def test_an_equal_all_gather_returns_a_new_tensor(communicator):
    x = torch.ones(3, 4, device=communicator.device)
    out = communicator.all_gather(x, dim=0)
    out.zero_()
    assert bool((x == 1).all()), "all_gather returned (a view of) its input"


@pytest.mark.comm_harness_internals("it builds comm-harness communicators over a subgroup itself")
def test_a_communicator_over_a_subgroup_speaks_in_group_ranks(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    if n < 2:
        pytest.skip("a subgroup that leaves a rank out needs 2 ranks or more")
    # Every rank but 0, as an engine's tensor- or expert-parallel group is a part of the world.
    subgroup = torch.distributed.new_group(list(range(1, n)))
    if rank == 0:
        with pytest.raises(ValueError, match="rank 0 is not a member of the group"):
            create_communicator(device, group=subgroup)
        return
    try:
        sub = create_communicator(device, group=subgroup)
        assert (sub.rank, sub.world_size) == (rank - 1, n - 1)
        members = n - 1
        gathered = sub.all_gather(torch.full((2,), float(rank), device=device), dim=0)
        assert_equal(gathered, torch.arange(1, n, dtype=torch.float32).repeat_interleave(2), "all_gather")
        summed = sub.all_reduce(torch.ones(3, device=device))
        assert_equal(summed, torch.full((3,), float(members)), "all_reduce")
        # src is a rank of the group: group rank members - 1 is global rank n - 1.
        broadcast = sub.broadcast(torch.full((2,), float(rank), device=device), src=members - 1)
        assert_equal(broadcast, torch.full((2,), float(n - 1)), "broadcast")
        scattered = sub.reduce_scatter(torch.arange(2 * members, dtype=torch.float32, device=device), dim=0)
        expected = torch.arange(2 * members, dtype=torch.float32)[2 * (rank - 1) : 2 * rank] * members
        assert_equal(scattered, expected, "reduce_scatter")
    finally:
        torch.distributed.destroy_process_group(subgroup)
