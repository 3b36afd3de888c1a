"""Hypothesis inside distributed test bodies (tests/communicators/lockstep.py): ranks never diverge.

A property that fails on one rank only, with a collective in every example, must fail cleanly on every rank
(no hang while the failing rank shrinks alone) and report the same minimal example from every rank, in fork
and reuse mode, derandomized and with a shared random seed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from plugin_runs import run_pytest_in

pytestmark = pytest.mark.e2e

pytest_plugins = ["pytester"]

CONFORMANCE_DIR = Path(__file__).resolve().parents[1] / "communicators"

CONFTEST = f"""
import sys
sys.path.insert(0, {str(CONFORMANCE_DIR)!r})
from hypothesis import settings
import hypothesis_profiles
import lockstep


def pytest_configure(config):
    settings.load_profile(config.getoption("hypothesis_profile", None) or hypothesis_profiles.CI_PROFILE)
    lockstep.configure_shared_seed(1234)
"""

PROPERTIES = """
import torch
import torch.distributed as dist
from hypothesis import strategies as st
from lockstep import given_on_ranks

FAILING_RANK = {failing_rank}


@given_on_ranks(x=st.integers(0, 1000), data=st.data())
def test_one_rank_disagrees_from_3_on(dist_env, x, data):
    y = data.draw(st.integers(0, x), label="y")
    # A collective in every example: ranks that went separate ways would hang here.
    total = torch.tensor([x + y], dtype=torch.int64)
    dist.all_reduce(total, group=dist_env.group)
    assert total.item() == dist_env.world_size * (x + y)
    if dist_env.rank == FAILING_RANK:
        assert x < 3, f"rank {{dist_env.rank}} rejects x={{x}}"


@given_on_ranks(x=st.integers(0, 10))
def test_every_rank_agrees(dist_env, x):
    total = torch.tensor([x])
    dist.all_reduce(total, group=dist_env.group)
    assert total.item() == dist_env.world_size * x
"""


@pytest.mark.parametrize(
    ("world_size", "failing_rank", "options"),
    [
        (2, 1, ["--dist-reuse", "off"]),
        (3, 0, ["--dist-reuse", "on", "--hypothesis-profile", "deep"]),
    ],
    ids=["ws2-fork-ci", "ws3-reuse-deep"],
)
def test_a_failure_on_one_rank_shrinks_on_every_rank_to_one_minimal_example(
    pytester: pytest.Pytester, world_size, failing_rank, options
):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_properties=PROPERTIES.format(failing_rank=failing_rank))
    run = run_pytest_in(
        pytester.path, "--dist-world-size", str(world_size), "--dist-timeout", "60", *options, timeout=240
    )
    assert run.outcomes == {
        "test_one_rank_disagrees_from_3_on": "failed",
        "test_every_rank_agrees": "passed",
    }, run.output
    message = run.messages["test_one_rank_disagrees_from_3_on"]
    assert "timed out" not in message and "killed" not in message, message
    assert f"rank {failing_rank} of {world_size} failed this example (only this rank failed)" in message
    for rank in set(range(world_size)) - {failing_rank}:
        assert (
            f"rank {rank} of {world_size} passed this example, but rank(s) {failing_rank} failed it"
            in message
        )
    assert f"rank {failing_rank} rejects x=3" in message
    # Every rank shrank to the same, minimal example.
    examples = re.findall(r"x=(\d+),", message)
    draws = re.findall(r"Draw 1 \(y\): (\d+)", message)
    assert examples == ["3"] * world_size and draws == ["0"] * world_size, message
    if "deep" in options:
        assert "examples seeded with --hypothesis-seed 1234" in message
