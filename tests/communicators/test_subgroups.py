"""Every collective of a communicator over a sub-group of the world: ranks [1, 2] and [0, 2].

An engine's tensor-, pipeline- and expert-parallel groups are parts of the world, and a communicator over
one speaks in the group's ranks: its `rank` and `world_size` are the group's, and `src`/`dst` name ranks of
the group, which the communicator must translate before torch.distributed sees them (torch takes global
ranks).
[1, 2] has no global rank 0 (a group rank passed as a global one names a rank outside it); [0, 2] skips one
(group rank 1 is global rank 2). Each test checks one collective, from every member, with every rank's data
telling who sent it; the non-members only take part in making the group. Inputs are contiguous, so what is
judged here is the translation alone (layouts and return conventions have their tests over the world).

Distributed, through `communicator_factory` (the run's target and platform); skipped, with the reason, at
world sizes that have no rank 2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.distributed as dist
from comm_test_data import assert_identical, rank_input

SUBGROUPS = ((1, 2), (0, 2))


@pytest.fixture(params=SUBGROUPS, ids=lambda members: "ranks_" + "_".join(map(str, members)))
def members(request: pytest.FixtureRequest) -> tuple[int, ...]:
    """The global ranks of the sub-group under test; skips when the world has too few ranks for it."""
    world_size = request.config.getoption("dist_world_size")
    if world_size <= max(request.param):
        pytest.skip(
            f"a sub-group of ranks {list(request.param)} needs world size {max(request.param) + 1} or more; "
            f"this run has {world_size}"
        )
    return request.param


@contextlib.contextmanager
def subgroup_communicator(communicator_factory: Any, members: tuple[int, ...]) -> Iterator[Any]:
    """The target's communicator over `members` on a member, None elsewhere; group and communicator destroyed
    after. Every rank of the world calls new_group, as torch requires."""
    group = dist.new_group(list(members))
    try:
        if dist.get_rank() not in members:
            yield None
            return
        communicator = communicator_factory(group=group)
        try:
            yield communicator
        finally:
            communicator.destroy()
            dist.destroy_process_group(group)
    finally:
        # Every rank leaves together: a rank outside the group that ended its test (and its process) while the
        # members still built their gloo mesh closed connections under them ("Connection closed by peer",
        # seen once at ws3 on a loaded host).
        dist.barrier()


def _data(global_rank: int, shape: tuple[int, ...] = (2, 3), seed: int = 0) -> torch.Tensor:
    """Global rank `global_rank`'s input: small integers in float32 that differ per rank."""
    return rank_input(shape, torch.float32, global_rank, seed)


def test_subgroup_ranks_and_size_are_the_groups(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        position = (sub.rank, sub.world_size)
        assert position == (members.index(dist.get_rank()), len(members)), (
            f"global rank {dist.get_rank()} in group {list(members)}: rank, world_size {position}"
        )


def test_subgroup_all_reduce_sums_the_members_only(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        out = sub.all_reduce(_data(dist.get_rank()).to(sub.device))
        assert_identical(out, sum(_data(r) for r in members), f"all_reduce over {list(members)}")


@pytest.mark.parametrize("dim", [0, -1])
def test_subgroup_all_gather_concatenates_the_members_in_group_order(communicator_factory, members, dim):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        out = sub.all_gather(_data(dist.get_rank()).to(sub.device), dim=dim)
        expected = torch.cat([_data(r) for r in members], dim=dim)
        assert_identical(out, expected, f"all_gather along dim {dim} over {list(members)}")


def test_subgroup_all_gatherv_takes_sizes_in_group_order(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        sizes = [1, 3]
        mine = _data(dist.get_rank(), (sizes[sub.rank], 3)).to(sub.device)
        out = sub.all_gatherv(mine, dim=0, sizes=sizes)
        expected = torch.cat([_data(r, (size, 3)) for r, size in zip(members, sizes, strict=True)])
        assert_identical(out, expected, f"all_gatherv of sizes {sizes} over {list(members)}")


def test_subgroup_reduce_scatter_gives_each_member_its_share(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        out = sub.reduce_scatter(_data(dist.get_rank(), (4, 3)).to(sub.device), dim=0)
        total = sum(_data(r, (4, 3)) for r in members)
        assert_identical(out, total.chunk(len(members))[sub.rank], f"reduce_scatter over {list(members)}")


def test_subgroup_reduce_scatterv_takes_sizes_in_group_order(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        sizes = [1, 3]
        out = sub.reduce_scatterv(_data(dist.get_rank(), (4, 3)).to(sub.device), dim=0, sizes=sizes)
        total = sum(_data(r, (4, 3)) for r in members)
        expected = total.split(sizes)[sub.rank]
        assert_identical(out, expected, f"reduce_scatterv of sizes {sizes} over {list(members)}")


def test_subgroup_gather_to_each_member(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        for dst in range(len(members)):
            out = sub.gather(_data(dist.get_rank(), seed=dst).to(sub.device), dst=dst, dim=0)
            case = f"gather to group rank {dst} (global {members[dst]}) over {list(members)}"
            if sub.rank == dst:
                assert_identical(out, torch.cat([_data(r, seed=dst) for r in members]), case)
            else:
                assert out is None, f"{case}: group rank {sub.rank} is not dst but got a tensor"


def test_subgroup_broadcast_from_each_member(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        for src in range(len(members)):
            x = _data(dist.get_rank(), seed=src).to(sub.device)
            out = sub.broadcast(x, src=src)
            # Where the data went is judged here; that broadcast returns its tensor, over the world.
            got = x if out is None else out
            case = f"broadcast from group rank {src} (global {members[src]}) over {list(members)}"
            assert_identical(got, _data(members[src], seed=src), case)


def test_subgroup_send_recv_between_members(communicator_factory, members):
    with subgroup_communicator(communicator_factory, members) as sub:
        if sub is None:
            return
        shape = (2, 3)
        # Group rank 0 sends first, then receives: one message each way, named by group ranks.
        for sender in range(2):
            receiver = 1 - sender
            if sub.rank == sender:
                sub.send(_data(dist.get_rank(), seed=sender).to(sub.device), dst=receiver)
            else:
                got = sub.recv(torch.Size(shape), torch.float32, src=sender)
                case = f"recv from group rank {sender} (global {members[sender]}) over {list(members)}"
                assert_identical(got, _data(members[sender], seed=sender), case)
