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
