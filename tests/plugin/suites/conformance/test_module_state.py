"""Module attributes and functions that fixtures change: what reuse workers cannot be given by value."""

import helpers
import pytest


@pytest.fixture
def module_attribute():
    helpers.MODULE_FLAG = "set-by-fixture"
    yield
    helpers.MODULE_FLAG = "unset"


@pytest.fixture
def new_module_attribute():
    helpers.ADDED = "added-by-fixture"
    yield
    del helpers.ADDED


@pytest.fixture
def patched_function(monkeypatch):
    monkeypatch.setattr(helpers, "greeting", lambda: "patched")


def test_fixture_module_attribute(dist_env, module_attribute):
    assert helpers.MODULE_FLAG == "set-by-fixture"


def test_fixture_new_module_attribute(dist_env, new_module_attribute):
    assert helpers.ADDED == "added-by-fixture"


def test_module_attribute_is_back(dist_env):
    assert helpers.MODULE_FLAG == "unset" and not hasattr(helpers, "ADDED")


def test_monkeypatched_function(dist_env, patched_function):
    assert helpers.greeting() == "patched"


def test_function_is_back(dist_env):
    assert helpers.greeting() == "hello"


@pytest.fixture
def leaves_a_module_attribute():
    yield
    helpers.LEFT_BEHIND = "by a teardown"


def test_teardown_leaves_a_module_attribute(dist_env, leaves_a_module_attribute):
    assert not hasattr(helpers, "LEFT_BEHIND")


def test_sees_what_a_teardown_left(dist_env):
    assert helpers.LEFT_BEHIND == "by a teardown"


def test_sees_what_a_teardown_left_again(dist_env):
    assert helpers.LEFT_BEHIND == "by a teardown"
