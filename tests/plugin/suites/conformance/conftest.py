"""Fixtures of the conformance suite: the ordinary ways a suite prepares the process its tests run in."""

import os

import pytest


@pytest.fixture(autouse=True)
def autouse_env(monkeypatch):
    """Every test of the suite sees this variable, as vLLM's suites set VLLM_* variables."""
    monkeypatch.setenv("CONFORMANCE_AUTOUSE", "on")


@pytest.fixture(scope="session")
def session_cwd():
    """pytest's working directory outside any test."""
    return os.getcwd()


def pytest_configure(config):
    # Recorded at session start, before any fixture: the environment every test should otherwise see.
    os.environ["CONFORMANCE_SESSION"] = "from-conftest"
