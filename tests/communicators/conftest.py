"""Fixtures and set-up of the communicator tests, run in the pytest process (bodies may run on the ranks)."""

from __future__ import annotations

import pytest
from conformance_examples import EXAMPLE_STRATEGIES
from hypothesis import is_hypothesis_test, settings
from hypothesis_profiles import CI_PROFILE
from lockstep import configure_shared_seed, warm_up


def pytest_configure(config: pytest.Config) -> None:
    # `--hypothesis-profile` is loaded by Hypothesis' own plugin; without it the conformance suite runs `ci`,
    # not Hypothesis' randomized default. Here, before any rank is forked, so that every rank inherits it.
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(CI_PROFILE)
    requested = config.getoption("hypothesis_seed", None)
    configure_shared_seed(int(requested) if requested is not None else None)


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(getattr(item, "obj", None) is not None and is_hypothesis_test(item.obj) for item in session.items):
        world_size = session.config.getoption("dist_world_size")
        warm_up([strategy(world_size) for strategy in EXAMPLE_STRATEGIES])


def pytest_report_header(config: pytest.Config) -> str:
    from lockstep import shared_seed

    profile = settings.get_current_profile_name()
    if settings.default.derandomize:
        return f"conformance examples: hypothesis profile {profile!r}, derandomized"
    return f"conformance examples: hypothesis profile {profile!r}, seed {shared_seed()} (--hypothesis-seed)"


@pytest.fixture
def requested_all2all_backend(request: pytest.FixtureRequest) -> str:
    """The name this run's `communicator` fixture asked for (--dist-all2all-backend)."""
    return request.config.getoption("dist_all2all_backend")


@pytest.fixture
def xpu_emulation(request: pytest.FixtureRequest, record_property) -> str:
    """Marks a test as running the XPU communicator emulated on cpu/gloo; skips it in non-cpu runs."""
    device = request.config.getoption("dist_device")
    if device != "cpu":
        pytest.skip(f"XPU emulation runs on cpu/gloo; this run's device is {device}")
    # Recorded here, in the pytest process: the property reaches junit XML and the report, saying that
    # no Intel GPU was involved.
    record_property("emulated", "xpu-on-gloo")
    return "xpu-on-gloo"
