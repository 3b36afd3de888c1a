"""The module watch of reuse mode, in the pytest process: which attributes of any imported module differ from
the workers' fork, read through dict version tags, and the same answers from the comparison used where the
interpreter keeps no tags."""

from __future__ import annotations

import gc
import json
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

import pytest
from hypothesis.internal.conjecture import junkdrawer

from harness.pytest_plugin.reuse import module_watch
from harness.pytest_plugin.reuse.module_watch import ModuleWatch

pytest_plugins = ["pytester"]

needs_tags = pytest.mark.skipif(module_watch._VERSION_OFFSET is None, reason="this interpreter keeps no tags")


@pytest.fixture(params=["version tags", "identity comparison"])
def watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleWatch]:
    if request.param == "version tags" and module_watch._VERSION_OFFSET is None:
        pytest.skip("this interpreter keeps no dict version tags")
    if request.param == "identity comparison":
        monkeypatch.setattr(module_watch, "_VERSION_OFFSET", None)
    sys.modules.pop("comm_harness_watched", None)
    watch = ModuleWatch()
    watch.take_base()
    yield watch
    for name in ("MARKER", "OTHER"):
        if hasattr(json, name):
            delattr(json, name)
    sys.modules.pop("comm_harness_watched", None)


def test_nothing_changed_is_no_change(watch: ModuleWatch) -> None:
    assert watch.changes() == ([], [])


def test_a_garbage_collection_is_no_change_once_hypothesis_times_it(watch: ModuleWatch) -> None:
    # Hypothesis installs a gc callback (the first time a test draws examples) that rebinds two globals of
    # its junkdrawer on every collection: that is not a fixture's doing, and in a whole suite it happens
    # between any two checks.
    junkdrawer.gc_cumulative_time()  # installs the callback (once per process)
    watch.take_base()  # as the workers' fork would be, with the callback in place
    gc.collect()
    assert watch.changes() == ([], [])


def test_a_standard_library_attribute_set_rebound_and_deleted_is_named(watch: ModuleWatch) -> None:
    json.MARKER = 7
    assert watch.changes() == (["json.MARKER (set)"], [])
    dumps = json.dumps
    json.dumps = lambda *args, **kwargs: "{}"
    try:
        assert watch.changes() == (["json.MARKER (set)", "json.dumps (rebound)"], [])
    finally:
        json.dumps = dumps
    del json.MARKER
    assert watch.changes() == ([], [])


def test_a_change_is_named_at_every_check_until_undone(watch: ModuleWatch) -> None:
    json.MARKER = 7
    assert watch.changes()[0] == ["json.MARKER (set)"]
    json.OTHER = 1  # the dict moves again while it already differs
    assert watch.changes()[0] == ["json.MARKER (set)", "json.OTHER (set)"]
    del json.MARKER, json.OTHER
    assert watch.changes() == ([], [])
    json.MARKER = 8  # a dict that moved and came back is watched as closely afterwards
    assert watch.changes()[0] == ["json.MARKER (set)"]


def test_pytests_own_rebinding_around_each_test_is_not_a_change(watch: ModuleWatch) -> None:
    stdout, showwarning = sys.stdout, warnings.showwarning
    sys.stdout = sys.stderr
    warnings.showwarning = lambda *args, **kwargs: None
    try:
        assert watch.changes() == ([], [])
        assert watch.changes() == ([], [])
    finally:
        sys.stdout, warnings.showwarning = stdout, showwarning


def test_a_module_imported_since_the_fork_is_named(watch: ModuleWatch) -> None:
    sys.modules["comm_harness_watched"] = ModuleType("comm_harness_watched")
    assert watch.changes() == ([], ["comm_harness_watched"])
    assert watch.changes() == ([], ["comm_harness_watched"]), "named until the workers are forked again"
    watch.take_base()
    assert watch.changes() == ([], [])


@needs_tags
def test_each_dicts_version_tag_is_read_in_one_call_as_python_sees_it() -> None:
    import ctypes

    dicts = [sys.modules, vars(json), {}]
    offset = module_watch._VERSION_OFFSET
    assert offset is not None
    read = module_watch._tag_reader(dicts)
    before = read()
    assert before == tuple(ctypes.c_uint64.from_address(id(d) + offset).value for d in dicts)
    dicts[2]["key"] = "value"
    after = read()
    assert after[:2] == before[:2] and after[2] != before[2]
    assert len(module_watch._tag_reader([{}])()) == 1, "one dict: still a tuple"


def test_hypothesis_pytest_plugin_state_is_the_workers_too(pytester: pytest.Pytester, run_pytest) -> None:
    # hypothesis's plugin sets running_under_pytest in each test's call phase, after the workers were forked.
    pytester.makepyfile(
        test_suite="""
import hypothesis


def test_one(dist_env):
    assert hypothesis.core.running_under_pytest  # as on fresh ranks, forked in the call phase


def test_two(dist_env):
    assert hypothesis.core.running_under_pytest
"""
    )
    run = run_pytest("--dist-world-size=2", "--dist-reuse=on")
    assert set(run.outcomes.values()) == {"passed"}, run.output
    assert "0 of 2 distributed tests ran on fresh ranks" in run.output, run.output
    assert "forked again" not in run.output, run.output
