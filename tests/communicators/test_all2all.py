"""All2all through the communicator: AgRs dispatch and combine, and what every backend name becomes here.

Distributed: each body runs on every rank of the run's device and world size.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from comm_test_data import assert_equal, rank_input, sizes_for

from communicators import (
    AgRsAll2AllManager,
    All2AllManagerUnavailableError,
    DeprecatedAll2AllBackendWarning,
    create_communicator,
    plan_all2all_backend,
    valid_all2all_backend_names,
)

HIDDEN, TOPK = 8, 2


def _tokens(rank: int, size: int) -> tuple[torch.Tensor, ...]:
    """Rank `rank`'s MoE inputs: hidden states (bf16), top-k weights, top-k expert ids, per-token scales."""
    return (
        rank_input((size, HIDDEN), torch.bfloat16, rank, 1),
        rank_input((size, TOPK), torch.float32, rank, 2),
        rank_input((size, TOPK), torch.int64, rank, 3).abs(),
        rank_input((size,), torch.float32, rank, 4),
    )


def _all_tokens(sizes: list[int]) -> list[torch.Tensor]:
    return [torch.cat(parts) for parts in zip(*(_tokens(r, s) for r, s in enumerate(sizes)), strict=True)]


@pytest.mark.parametrize("pattern", ["uneven_with_zeros", "last_rank_only", "equal"])
def test_dispatch_gathers_in_rank_order_and_combine_returns_own_tokens(communicator, pattern):
    rank, world_size, device = communicator.rank, communicator.world_size, communicator.device
    sizes = sizes_for(pattern, world_size)
    hidden, weights, ids, scales = (t.to(device) for t in _tokens(rank, sizes[rank]))
    expected = _all_tokens(sizes)

    got = communicator.dispatch(hidden, weights, ids, sizes)
    assert len(got) == 3
    for name, actual, want in zip(("hidden", "weights", "ids"), got, expected, strict=False):
        assert_equal(actual, want, f"dispatch {name} sizes={sizes}")

    *got, extras = communicator.dispatch(hidden, weights, ids, sizes, extra_tensors=[scales])
    assert isinstance(extras, list) and len(extras) == 1
    assert_equal(extras[0], expected[3], f"dispatch extra tensor sizes={sizes}")

    # Each rank's "experts" scale every token by (rank + 1); combine must sum that over ranks and hand
    # each rank back exactly its own rows.
    expert_output = got[0] * (rank + 1)
    combined = communicator.combine(expert_output, sizes)
    factor = world_size * (world_size + 1) // 2
    assert_equal(combined, _tokens(rank, sizes[rank])[0] * factor, f"combine sizes={sizes}")


def test_dispatch_router_logits(communicator):
    rank, device = communicator.rank, communicator.device
    sizes = sizes_for("uneven_with_zeros", communicator.world_size)
    hidden, _weights, _ids, scales = (t.to(device) for t in _tokens(rank, sizes[rank]))
    logits = rank_input((sizes[rank], 6), torch.float32, rank, 5, device)
    expected_logits = torch.cat([rank_input((s, 6), torch.float32, r, 5) for r, s in enumerate(sizes)])

    got_hidden, got_logits = communicator.dispatch_router_logits(hidden, logits, sizes)
    assert_equal(got_hidden, _all_tokens(sizes)[0], "router-logits dispatch hidden")
    assert_equal(got_logits, expected_logits, "router-logits dispatch logits")

    *_, extras = communicator.dispatch_router_logits(hidden, logits, sizes, extra_tensors=[scales])
    assert_equal(extras[0], _all_tokens(sizes)[3], "router-logits dispatch extra tensor")


@pytest.mark.comm_harness_internals("it checks comm-harness's own manager class")
def test_communicator_fixture_runs_the_resolved_backend(communicator, requested_all2all_backend):
    platform = communicator.device.type
    assert communicator.all2all_backend == plan_all2all_backend(platform, requested_all2all_backend).backend
    assert isinstance(communicator.all2all_manager, AgRsAll2AllManager)


def test_every_known_name_creates_what_the_rule_says_on_this_platform(dist_env):
    platform = dist_env.device.type
    for name in valid_all2all_backend_names():
        plan = plan_all2all_backend(platform, name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if plan.backend != "allgather_reducescatter":
                # Resolved to a backend whose library is installed here: its manager is not in this package.
                with pytest.raises(All2AllManagerUnavailableError, match=plan.backend):
                    create_communicator(dist_env.device, all2all_backend=name)
                continue
            communicator = create_communicator(dist_env.device, all2all_backend=name)
        assert communicator.all2all_backend == "allgather_reducescatter", name
        assert isinstance(communicator.all2all_manager, AgRsAll2AllManager), name
        assert [w.category for w in caught] == [category for category, _ in plan.warnings], name
        communicator.destroy()


def test_naive_alias_runs_allgather_reducescatter_end_to_end(dist_env):
    with pytest.warns(DeprecatedAll2AllBackendWarning, match="'naive'.*'allgather_reducescatter'"):
        communicator = create_communicator(dist_env.device, all2all_backend="naive")
    sizes = sizes_for("uneven_with_zeros", dist_env.world_size)
    hidden, weights, ids, _scales = (
        t.to(dist_env.device) for t in _tokens(dist_env.rank, sizes[dist_env.rank])
    )
    got_hidden, _, _ = communicator.dispatch(hidden, weights, ids, sizes)
    assert_equal(got_hidden, _all_tokens(sizes)[0], "naive dispatch")
    combined = communicator.combine(got_hidden, sizes)
    assert_equal(
        combined, _tokens(dist_env.rank, sizes[dist_env.rank])[0] * dist_env.world_size, "naive combine"
    )
    communicator.destroy()
