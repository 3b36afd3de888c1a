"""What a communicator under test does with all2all backend names, judged by comm-harness's one rule.

Distributed, through `communicator_factory`: each body makes communicators of the run's target and platform
with one name. What the name must run comes from `communicators.plan_all2all_backend` (the table in the
README): aliases and backends a platform lacks run allgather_reducescatter, unknown names are a ValueError.
"""

from __future__ import annotations

import warnings

import pytest

from communicators import plan_all2all_backend

AGRS = "allgather_reducescatter"


@pytest.mark.parametrize("name", [AGRS, "naive", "pplx", "deepep_low_latency"])
def test_a_known_name_runs_the_backend_the_rule_names(communicator_factory, communicator_platform, name):
    plan = plan_all2all_backend(communicator_platform.name, name)
    if plan.backend != AGRS:
        pytest.skip(f"{name!r} runs {plan.backend!r} on {communicator_platform.name} here")
    with warnings.catch_warnings():
        # Which warning each name gives is comm-harness's own contract (test_backend_resolution.py).
        warnings.simplefilter("ignore")
        made = communicator_factory(name)
        try:
            backend, manager = made.all2all_backend, made.all2all_manager
        finally:
            made.destroy()
    assert backend == AGRS, f"{name!r} was asked for: {backend!r} reported, {AGRS!r} expected"
    assert type(manager).__name__ == "AgRsAll2AllManager", f"{name!r}: manager {type(manager).__name__}"


def test_an_unknown_name_is_a_value_error(communicator_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no_such_backend"):
            made = communicator_factory("no_such_backend")
            # An engine may resolve the name only when the manager is first needed.
            made.all2all_manager  # noqa: B018
