"""Environment variables and the working directory, set by fixtures or changed by bodies."""

import os

import pytest


@pytest.fixture
def env_by_monkeypatch(monkeypatch):
    monkeypatch.setenv("CONFORMANCE_FIXTURE", "monkeypatched")


@pytest.fixture
def env_and_value(monkeypatch):
    monkeypatch.setenv("CONFORMANCE_WITH_VALUE", "set")
    return 42


@pytest.fixture
def env_by_hand():
    os.environ["CONFORMANCE_BY_HAND"] = "yes"
    yield
    del os.environ["CONFORMANCE_BY_HAND"]


@pytest.fixture
def nccl_env(monkeypatch):
    """NCCL reads its variables when a communicator starts: a reuse worker's has."""
    monkeypatch.setenv("NCCL_DEBUG", "WARN")


@pytest.fixture
def env_removed(monkeypatch):
    monkeypatch.delenv("CONFORMANCE_SESSION")


def test_fixture_env(dist_env, env_by_monkeypatch):
    assert os.environ["CONFORMANCE_FIXTURE"] == "monkeypatched"


def test_fixture_env_is_gone_after_teardown(dist_env):
    assert "CONFORMANCE_FIXTURE" not in os.environ


def test_fixture_env_with_a_value(dist_env, env_and_value):
    assert env_and_value == 42 and os.environ["CONFORMANCE_WITH_VALUE"] == "set"


def test_fixture_env_by_hand(dist_env, env_by_hand):
    assert os.environ["CONFORMANCE_BY_HAND"] == "yes"


def test_fixture_sets_an_nccl_variable(dist_env, nccl_env):
    assert os.environ["NCCL_DEBUG"] == "WARN"


def test_fixture_deletes_env(dist_env, env_removed):
    assert "CONFORMANCE_SESSION" not in os.environ


def test_session_env_is_back(dist_env):
    assert os.environ["CONFORMANCE_SESSION"] == "from-conftest"


def test_autouse_env(dist_env):
    assert os.environ["CONFORMANCE_AUTOUSE"] == "on"


def test_pytest_current_test(dist_env):
    assert os.environ["PYTEST_CURRENT_TEST"].endswith("test_pytest_current_test (call)")


def test_cwd_by_monkeypatch(dist_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert os.getcwd() == str(tmp_path)


def test_body_changes_env_and_cwd(dist_env, tmp_path):
    os.environ["CONFORMANCE_BODY"] = "leaked?"
    os.environ.pop("CONFORMANCE_AUTOUSE")
    os.chdir(tmp_path)


def test_body_changes_do_not_leak(dist_env, session_cwd):
    assert "CONFORMANCE_BODY" not in os.environ
    assert os.environ["CONFORMANCE_AUTOUSE"] == "on"
    assert os.getcwd() == session_cwd


def test_syspath_prepend(dist_env, monkeypatch, tmp_path):
    (tmp_path / "conformance_on_path.py").write_text("WHERE = 'tmp_path'\n")
    monkeypatch.syspath_prepend(tmp_path)
    import conformance_on_path

    assert conformance_on_path.WHERE == "tmp_path"


def test_syspath_is_back(dist_env):
    import sys

    assert not any("test_syspath_prepend" in entry for entry in sys.path)
