"""`--dist-reuse check` runs each distributed test on fresh ranks and on the reuse workers and fails those
whose outcomes differ, naming both: it is how the state reuse mode neither carries nor detects
(docs/plugin.md, "What reuse mode carries") shows up in a report. Real pytest runs of a small suite."""

from __future__ import annotations

from harness.pytest_plugin.reuse.reuse_check import UNSEEN_BY_REUSE_MODE

pytest_plugins = ["pytester"]
DISAGREE = "reuse mode and fork mode disagree"

SUITE = """
import logging
import os

import helpers
import pytest
import torch


@pytest.fixture
def appended():
    helpers.SEEN.append("fixture")  # in place: the module's dict does not change
    yield
    helpers.SEEN.clear()


@pytest.fixture
def quiet_logger():
    logging.getLogger("suite").setLevel(logging.ERROR)  # a logger's level: an object changed in place
    yield
    logging.getLogger("suite").setLevel(logging.NOTSET)


@pytest.fixture
def no_logging_errors(request):
    logging.raiseExceptions = False  # a standard-library module's attribute: detected
    request.addfinalizer(lambda: setattr(logging, "raiseExceptions", True))


@pytest.fixture
def open_descriptor(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"from the fixture")
    fd = os.open(path, os.O_RDONLY)  # an open resource: its number pickles, the descriptor does not
    yield fd
    os.close(fd)


def test_in_place_change(dist_env, appended):
    assert helpers.SEEN == ["fixture"]


def test_logger_level(dist_env, quiet_logger):
    assert logging.getLogger("suite").level == logging.ERROR


def test_open_descriptor(dist_env, open_descriptor):
    assert os.pread(open_descriptor, 16, 0) == b"from the fixture"


def test_module_attribute(dist_env, no_logging_errors):
    assert logging.raiseExceptions is False


def test_reuse_safe(dist_env):
    assert torch.ones(1).item() == 1
"""


def _suite(pytester):
    pytester.makepyfile(helpers="SEEN = []\n", test_suite=SUITE)


def test_check_mode_fails_the_tests_whose_outcomes_differ_and_names_both(pytester, run_pytest):
    _suite(pytester)
    run = run_pytest("--dist-world-size=2", "--dist-reuse=check")
    assert run.outcomes == {
        "test_in_place_change": "failed",
        "test_logger_level": "failed",
        "test_open_descriptor": "failed",
        "test_module_attribute": "passed",  # detected: ran on fresh ranks only
        "test_reuse_safe": "passed",
    }, run.output
    # Each item of docs/plugin.md's "neither carried nor detected", named in the report as a disagreement.
    for test, failure in (
        ("test_in_place_change", "AssertionError"),
        ("test_logger_level", "AssertionError"),
        ("test_open_descriptor", "OSError"),
    ):
        message = run.messages[test]
        assert message.startswith(f"{DISAGREE}: fork mode (fresh ranks) passed; "), message
        assert "reuse mode (workers) failed: " in message and failure in message, message
    assert "check (each test on fresh ranks and on reuse workers" in run.output
    assert "reuse mode cannot see" not in run.output  # check mode sees them


def test_reuse_mode_alone_does_not_see_in_place_changes(pytester, run_pytest):
    # Why check mode exists: the same suite in plain reuse mode gets other outcomes than in fork mode.
    _suite(pytester)
    fork = run_pytest("--dist-world-size=2", "--dist-reuse=off")
    reuse = run_pytest("--dist-world-size=2", "--dist-reuse=on")
    assert set(fork.outcomes.values()) == {"passed"}, fork.output
    assert reuse.outcomes["test_in_place_change"] == "failed", reuse.output
    assert reuse.outcomes["test_module_attribute"] == "passed", reuse.output
    assert "logging.raiseExceptions (rebound)" in reuse.output
    # What it cannot see, its report says it cannot, and where to look.
    assert UNSEEN_BY_REUSE_MODE in " ".join(reuse.output.split()), reuse.output
