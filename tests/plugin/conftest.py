"""Fixtures of the plugin's tests."""

from __future__ import annotations

import functools

import pytest
from plugin_runs import run_pytest_in

# Suites the plugin's tests run in a separate pytest (conformance.py), not tests of this one.
collect_ignore = ["suites"]


@pytest.fixture
def run_pytest(pytester: pytest.Pytester):
    """`run_pytest_in` the directory of `pytester.makepyfile` (test modules load the pytester plugin)."""
    return functools.partial(run_pytest_in, pytester.path)
