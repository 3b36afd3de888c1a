"""Reuse mode's worker between tests (WorkerState), in this process: what a test body changes in the
environment, working directory and `sys.path` is undone before the next test, as fresh ranks would start."""

from __future__ import annotations

import os
import sys
import warnings

import pytest

from harness.pytest_plugin.reuse.carried_state import capture, take_fork_time_state
from harness.pytest_plugin.reuse.worker_state import WorkerState


@pytest.fixture
def own_process_state():
    """Whatever the test does to os.environ, the working directory and sys.path, put back afterwards."""
    environ, cwd, path = dict(os.environ), os.getcwd(), list(sys.path)
    yield
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    sys.path[:] = path


def test_a_bodys_environment_directory_and_path_do_not_reach_the_next_test(own_process_state, tmp_path):
    os.environ["HARNESS_TEST_KEPT"] = "base"
    os.environ.pop("HARNESS_TEST_ADDED", None)
    fork_time = take_fork_time_state("cpu")
    worker = WorkerState(fork_time, "cpu", None, list(warnings.filters))
    base_cwd, base_path = os.getcwd(), list(sys.path)

    os.environ["HARNESS_TEST_FROM_FIXTURE"] = "1"  # a fixture's monkeypatch.setenv, in the pytest process
    carried = capture(fork_time, "cpu", None, {}, list(warnings.filters))
    del os.environ["HARNESS_TEST_FROM_FIXTURE"]
    worker.apply(carried)
    assert os.environ["HARNESS_TEST_FROM_FIXTURE"] == "1"

    # The body: adds, changes and removes variables, moves elsewhere, extends sys.path.
    os.environ["HARNESS_TEST_ADDED"] = "leaked?"
    os.environ["HARNESS_TEST_KEPT"] = "changed"
    del os.environ["PATH"]
    os.chdir(tmp_path)
    sys.path.insert(0, str(tmp_path))
    worker.restore()

    assert "HARNESS_TEST_ADDED" not in os.environ and "HARNESS_TEST_FROM_FIXTURE" not in os.environ
    assert os.environ["HARNESS_TEST_KEPT"] == "base" and "PATH" in os.environ
    assert (os.getcwd(), sys.path) == (base_cwd, base_path)
