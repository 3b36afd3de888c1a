"""What the docstrings and the documentation (docs/) promise, one test per promise, through the communicator's
public API.

Distributed tests run on every rank of the run's world size; default peers are only told apart from other
choices at world size 3 and more (at 2, the next rank is also the previous one), which the cpu cells run.
The rest are plain tests of the resolution rule's warnings and errors.
"""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
import torch.distributed as dist
from comm_test_data import assert_identical

from communicators import (
    All2AllBackendFallbackWarning,
    All2AllBackendWarning,
    All2AllManagerUnavailableError,
    DeprecatedAll2AllBackendWarning,
    RemovedAll2AllBackendWarning,
    UnknownAll2AllBackendError,
    create_communicator,
    resolve_all2all_backend,
    valid_all2all_backend_names,
)

AGRS = "allgather_reducescatter"


def _mine(rank: int, shape: tuple[int, ...] = (2, 3), dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A tensor that says which rank made it: rank r's is (r + 1) * (1 + its element index)."""
    return ((torch.arange(math.prod(shape)) + 1) * (rank + 1)).to(dtype).view(shape)


# -- collectives: in place, defaults, empty optional arguments ---------------------------------------------


def test_all_reduce_of_a_contiguous_tensor_is_in_place(communicator, communicator_promises):
    n, device = communicator.world_size, communicator.device
    x = _mine(communicator.rank).to(device)
    out = communicator.all_reduce(x)
    expected = sum(_mine(r) for r in range(n))
    assert_identical(out, expected, "all_reduce's result")
    if "all_reduce_in_place" not in communicator_promises:
        return  # an optional promise; this implementation's contract is out of place (or does not say)
    assert out.data_ptr() == x.data_ptr(), "all_reduce returned a new tensor for a contiguous input"
    assert_identical(x, expected, "the contiguous input after all_reduce")


def test_all_reduce_of_a_non_contiguous_tensor_returns_the_sum(communicator):
    x = _mine(communicator.rank, (3, 2)).to(communicator.device).t()
    assert not x.is_contiguous()
    out = communicator.all_reduce(x)
    assert_identical(out, sum(_mine(r, (3, 2)) for r in range(communicator.world_size)).t(), "all_reduce")


def test_gather_defaults_to_rank_0_and_the_last_dim(communicator):
    n, rank = communicator.world_size, communicator.rank
    out = communicator.gather(_mine(rank).to(communicator.device))
    if rank == 0:
        assert_identical(out, torch.cat([_mine(r) for r in range(n)], dim=-1), "gather with defaults")
    else:
        assert out is None, f"gather with the default dst returned a tensor on rank {rank}"


def test_broadcast_defaults_to_rank_0(communicator):
    out = communicator.broadcast(_mine(communicator.rank).to(communicator.device))
    assert_identical(out, _mine(0), "broadcast with the default src")


def test_all_gather_defaults_to_the_last_dim_and_all_gatherv_to_dim_0(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    assert_identical(
        communicator.all_gather(_mine(rank).to(device)),
        torch.cat([_mine(r) for r in range(n)], dim=-1),
        "all_gather",
    )
    assert_identical(
        communicator.all_gatherv(_mine(rank).to(device)),
        torch.cat([_mine(r) for r in range(n)]),
        "all_gatherv",
    )


def test_reduce_scatter_and_reduce_scatterv_default_to_the_last_dim(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    full = sum(_mine(r, (2, 3 * n)) for r in range(n))
    expected = full.split(3, dim=-1)[rank]
    assert_identical(
        communicator.reduce_scatter(_mine(rank, (2, 3 * n)).to(device)), expected, "reduce_scatter"
    )
    sizes = [3] * n
    got = communicator.reduce_scatterv(_mine(rank, (2, 3 * n)).to(device), sizes=sizes)
    assert_identical(got, expected, "reduce_scatterv")


def test_send_and_recv_default_to_the_next_and_the_previous_rank(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    if n == 1:
        pytest.skip("send/recv needs two ranks or more")
    # One pair at a time, in sender order: each rank sends to its default peer, which receives from its own.
    for sender in range(n):
        if rank == sender:
            communicator.send(_mine(rank).to(device))
        elif rank == (sender + 1) % n:
            got = communicator.recv(torch.Size((2, 3)), torch.float32)
            assert_identical(got, _mine((rank - 1) % n), f"rank {rank}'s recv() with the default src")


def test_recv_takes_a_list_or_a_size_and_returns_the_dtype_asked_for(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    if n == 1:
        pytest.skip("send/recv needs two ranks or more")
    if rank == 0:
        communicator.send(_mine(0, (2, 2), torch.bfloat16).to(device), dst=n - 1)
        communicator.send(_mine(0, (3,), torch.int64).to(device), dst=n - 1)
    elif rank == n - 1:
        assert_identical(
            communicator.recv([2, 2], torch.bfloat16, src=0), _mine(0, (2, 2), torch.bfloat16), "list"
        )
        assert_identical(
            communicator.recv(torch.Size([3]), torch.int64, src=0), _mine(0, (3,), torch.int64), "Size"
        )


def test_peers_outside_the_group_are_refused_before_any_collective(communicator):
    n, device = communicator.world_size, communicator.device
    x = torch.ones(2, device=device)
    for bad in (n, -1):
        with pytest.raises(ValueError, match=f"dst {bad} is not a rank of this group"):
            communicator.gather(x, dst=bad)
        with pytest.raises(ValueError, match=f"src {bad} is not a rank of this group"):
            communicator.broadcast(x, src=bad)
        with pytest.raises(ValueError, match=f"dst {bad} is not a rank of this group"):
            communicator.send(x, dst=bad)
        with pytest.raises(ValueError, match=f"src {bad} is not a rank of this group"):
            communicator.recv((2,), torch.float32, src=bad)
    assert communicator.all_reduce(torch.ones(1, device=device)).item() == n


def test_an_empty_list_gathers_to_an_empty_list(communicator):
    assert communicator.all_gatherv([], dim=0) == []
    assert communicator.all_gatherv((), dim=0, sizes=[1] * communicator.world_size) == []


@pytest.mark.parametrize("router_logits", [False, True], ids=["topk", "router_logits"])
def test_dispatch_with_an_empty_extra_list_returns_an_empty_fourth_item(communicator, router_logits):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    sizes = [r % 3 for r in range(n)]
    hidden = _mine(rank, (sizes[rank], 4)).to(device)
    ids = torch.full((sizes[rank], 2), rank, dtype=torch.int64, device=device)
    if router_logits:
        got = communicator.dispatch_router_logits(hidden, ids.float(), sizes, extra_tensors=[])
        plain = communicator.dispatch_router_logits(hidden, ids.float(), sizes)
    else:
        got = communicator.dispatch(hidden, ids.float(), ids, sizes, extra_tensors=[])
        plain = communicator.dispatch(hidden, ids.float(), ids, sizes)
    assert len(got) == len(plain) + 1, f"extra_tensors=[] gave {len(got)} items, without it {len(plain)}"
    assert got[-1] == [], f"the fourth item for extra_tensors=[] is {got[-1]!r}, not []"
    assert_identical(got[0], torch.cat([_mine(r, (s, 4)) for r, s in enumerate(sizes)]), "dispatched hidden")


def test_combine_returns_each_rank_its_own_tokens_summed(communicator):
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    sizes = [(r + 1) % 3 for r in range(n)]
    total = sum(sizes)
    combined = communicator.combine(_mine(rank, (total, 2)).to(device), sizes)
    start = sum(sizes[:rank])
    expected = sum(_mine(r, (total, 2)) for r in range(n))[start : start + sizes[rank]]
    assert_identical(combined, expected, "combine")


def test_destroy_leaves_the_process_group_to_the_caller(dist_env):
    communicator = create_communicator(dist_env.device)
    communicator.destroy()
    ones = torch.ones(1, device=dist_env.device)
    dist.all_reduce(ones, group=dist_env.group)
    assert ones.item() == dist_env.world_size


# -- the resolution rule: warning classes, texts, logging -------------------------------------------------


def _warnings_of(platform: str, name: str) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_all2all_backend(platform, name) == AGRS
    return caught


def test_the_warning_classes_form_the_documented_hierarchy():
    assert issubclass(All2AllBackendWarning, UserWarning)
    assert issubclass(DeprecatedAll2AllBackendWarning, All2AllBackendWarning)
    assert issubclass(All2AllBackendFallbackWarning, All2AllBackendWarning)
    # A removed backend falls back: filters on the fallback class catch it too.
    assert issubclass(RemovedAll2AllBackendWarning, All2AllBackendFallbackWarning)
    assert issubclass(UnknownAll2AllBackendError, ValueError)
    assert issubclass(All2AllManagerUnavailableError, NotImplementedError)


@pytest.mark.parametrize("platform", ["cpu", "xpu"])
def test_a_fallback_warning_names_platform_name_reason_and_fallback(platform):
    [warning] = _warnings_of(platform, "deepep_low_latency")
    assert warning.category is All2AllBackendFallbackWarning
    assert str(warning.message) == (
        f"all2all backend 'deepep_low_latency' is not available on {platform} (only on cuda); "
        f"on {platform} falling back to '{AGRS}'."
    )


@pytest.mark.parametrize("platform", ["cpu", "cuda", "xpu"])
def test_a_removed_backend_warns_that_it_was_removed(platform):
    [warning] = _warnings_of(platform, "pplx")
    assert warning.category is RemovedAll2AllBackendWarning
    text = str(warning.message)
    assert text.startswith("all2all backend 'pplx' was removed (")
    assert text.endswith(f"; on {platform} falling back to '{AGRS}'.")


def test_the_naive_alias_warns_once_naming_its_target():
    [warning] = _warnings_of("cpu", "naive")
    assert warning.category is DeprecatedAll2AllBackendWarning
    assert str(warning.message).startswith(
        f"all2all backend 'naive' is deprecated: it is an alias of '{AGRS}'; ask for '{AGRS}' instead"
    )


def test_every_warning_is_also_logged_with_its_text(caplog):
    with caplog.at_level(logging.WARNING, logger="communicators"):
        caught = _warnings_of("cpu", "flashinfer_all2allv")
    assert [w.category for w in caught] == [DeprecatedAll2AllBackendWarning, All2AllBackendFallbackWarning]
    assert [record.getMessage() for record in caplog.records] == [str(w.message) for w in caught]


@pytest.mark.parametrize("platform", ["cpu", "cuda", "xpu"])
def test_an_unknown_name_is_a_value_error_listing_every_valid_name(platform):
    with pytest.raises(ValueError) as error:
        resolve_all2all_backend(platform, "allgather_reduce_scatter")
    text = str(error.value)
    assert "Unknown all2all backend 'allgather_reduce_scatter'" in text
    assert f"Valid names: {', '.join(valid_all2all_backend_names())}." in text
    assert f"Did you mean '{AGRS}'?" in text


def test_creating_a_communicator_with_a_removed_name_warns_and_runs_allgather_reducescatter(dist_env):
    with pytest.warns(RemovedAll2AllBackendWarning, match="'pplx' was removed"):
        communicator = create_communicator(dist_env.device, all2all_backend="pplx")
    assert communicator.all2all_backend == AGRS
    communicator.destroy()
