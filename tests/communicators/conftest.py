"""Fixtures of the communicator tests that run in the pytest process (test bodies may run on the ranks)."""

from __future__ import annotations

import pytest


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
