"""The communicator's collectives skip torch.distributed's Python wrapper only where the wrapper only checks.

Distributed: each body runs on every rank. The wrapper functions that `GroupCalls` falls back to are
replaced by counting ones inside the body (on the rank, so the patch holds in fork and reuse modes alike).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.distributed import distributed_c10d as c10d

from communicators import group_calls

pytestmark = pytest.mark.comm_harness_internals("it counts calls into comm-harness's GroupCalls")


@contextlib.contextmanager
def counting_wrappers():
    """Counts calls of the torch.distributed functions `GroupCalls` falls back to, by name."""
    counts: dict[str, int] = {}
    patched = {}
    for name in ("all_gather_single", "reduce_scatter_single"):
        patched[name] = getattr(group_calls, name)
    for name in ("all_reduce", "broadcast"):
        patched[name] = getattr(group_calls.dist, name)

    def counting(name, real):
        def call(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return real(*args, **kwargs)

        return call

    for name in ("all_gather_single", "reduce_scatter_single"):
        setattr(group_calls, name, counting(name, patched[name]))
    real_all_reduce, real_broadcast = group_calls.dist.all_reduce, group_calls.dist.broadcast
    group_calls.dist.all_reduce = counting("all_reduce", real_all_reduce)
    group_calls.dist.broadcast = counting("broadcast", real_broadcast)
    try:
        yield counts
    finally:
        for name in ("all_gather_single", "reduce_scatter_single"):
            setattr(group_calls, name, patched[name])
        group_calls.dist.all_reduce, group_calls.dist.broadcast = real_all_reduce, real_broadcast


def test_plain_tensors_go_straight_to_the_group(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    with counting_wrappers() as counts:
        gathered = communicator.all_gather(torch.full((2, 3), float(rank), device=device), dim=0)
        scattered = communicator.reduce_scatter(torch.ones(2 * n, 3, device=device), dim=0)
        summed = communicator.all_reduce(torch.ones(4, device=device))
        broadcast = communicator.broadcast(torch.full((3,), float(rank), device=device), src=n - 1)
    assert counts == {}, f"rank {rank}: the torch.distributed wrapper ran for {counts}"
    expected_gather = torch.arange(n, dtype=torch.float32).repeat_interleave(2)[:, None].expand(2 * n, 3)
    torch.testing.assert_close(gathered.cpu(), expected_gather)
    torch.testing.assert_close(scattered.cpu(), torch.full((2, 3), float(n)))
    torch.testing.assert_close(summed.cpu(), torch.full((4,), float(n)))
    torch.testing.assert_close(broadcast.cpu(), torch.full((3,), float(n - 1)))


def test_complex_tensors_take_the_wrapper_which_views_them_as_real(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    value = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64, device=device) * (rank + 1)
    with counting_wrappers() as counts:
        summed = communicator.all_reduce(value.clone())
    assert counts == {"all_reduce": 1}
    weight = n * (n + 1) // 2
    torch.testing.assert_close(summed.cpu(), torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64) * weight)


class _Traced(torch.Tensor):
    """A tensor subclass: it has `__torch_function__`, which only the wrapper honours."""


def test_tensor_subclasses_and_coalescing_take_the_wrapper(communicator):
    calls = communicator._calls
    plain = torch.ones(2, device=communicator.device)
    assert calls._direct(plain)
    assert not calls._direct(plain.as_subclass(_Traced))
    assert not calls._direct(plain.to(torch.complex64))
    # Inside torch.distributed's coalescing manager the wrapper queues the call instead of issuing it.
    c10d._world.pg_coalesce_state[calls.group] = []
    try:
        assert not calls._direct(plain)
    finally:
        del c10d._world.pg_coalesce_state[calls.group]
    assert calls._direct(plain)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Dynamo's notes on lru_cache and pybind calls it traces
def test_collectives_stay_correct_under_torch_compile(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device

    def step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return communicator.all_reduce(x.clone()) * 2, communicator.all_gather(x, dim=0)

    summed, gathered = torch.compile(step, backend="eager")(torch.full((2, 3), float(rank), device=device))
    torch.testing.assert_close(summed.cpu(), torch.full((2, 3), float(n * (n - 1))))
    expected = torch.arange(n, dtype=torch.float32).repeat_interleave(2)[:, None].expand(2 * n, 3)
    torch.testing.assert_close(gathered.cpu(), expected)


def test_a_list_of_equal_sizes_gathers_as_one_group_call_where_lists_are_not_packed(communicator):
    # The base's path (NCCL's); on gloo the instance is switched to it for the test, and GroupCalls gathers
    # the list tensor by tensor there (gloo's coalesced all-gather garbles mixed dtypes).
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    communicator.packs_row_lists = False
    calls = communicator._calls
    grouped = []
    real = calls.all_gather_coalesced
    calls.all_gather_coalesced = lambda outs, rows: (grouped.append(len(rows)), real(outs, rows))
    try:
        inputs = [
            torch.full((2, 3), float(rank), dtype=torch.bfloat16, device=device),
            torch.full((2,), rank, dtype=torch.int64, device=device),
            torch.full((2, 1), float(rank), dtype=torch.float32, device=device),
        ]
        outputs = communicator.all_gatherv(inputs, dim=0)
        pair = communicator.all_gatherv(inputs[:2], dim=0)
    finally:
        del communicator.packs_row_lists
        del calls.all_gather_coalesced
    assert grouped == [3, 2], f"rank {rank}: group calls of {grouped} tensors"
    ranks = torch.arange(n).repeat_interleave(2)
    assert torch.equal(outputs[0].cpu(), ranks[:, None].expand(2 * n, 3).to(torch.bfloat16))
    assert torch.equal(outputs[1].cpu(), ranks)
    assert torch.equal(outputs[2].cpu(), ranks[:, None].to(torch.float32))
    assert torch.equal(pair[1].cpu(), ranks)
