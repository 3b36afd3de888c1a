"""Reuse mode gives each test of the conformance suite (tests/plugin/suites/conformance) the outcome fork
mode gives it, and runs on fresh ranks only the tests whose fixtures changed what cannot be carried."""

from __future__ import annotations

import pytest
from conformance import markdown, run_conformance

pytestmark = pytest.mark.e2e

# In fork mode; every other test of the suite passes.
NOT_PASSING = {"test_fails_on_purpose": "failed", "test_xfails": "skipped", "test_skips_on_a_rank": "skipped"}
# Their fixtures set module or class attributes, monkeypatched a function, or set a variable NCCL reads.
ON_FRESH_RANKS = {
    "test_fixture_module_attribute",
    "test_fixture_new_module_attribute",
    "test_monkeypatched_function",
    "test_fixture_sets_an_nccl_variable",  # read when the process group starts
    "test_tmp_path_files",  # the first test under a module-scoped fixture that sets a module attribute
    "test_sees_class_state",  # the first test under a class-scoped fixture that sets a class attribute
    "test_stdlib_module_attribute",  # json.MARKER: modules outside the suite are watched too
    "test_inference_mode",  # a switch with no setter
    "test_signal_handler",  # a handler: does not pickle
    # A teardown set a module attribute: the next test's check finds it, the one after gets new workers.
    "test_sees_what_a_teardown_left",
}


def test_reuse_mode_gives_the_outcomes_of_fork_mode(tmp_path):
    result = run_conformance("cpu", 2, tmp_path)
    table = markdown(result)
    assert len(result.rows) > 30, table
    assert result.identical, table
    assert {row.name: row.fork for row in result.rows if row.fork != "passed"} == NOT_PASSING, table
    assert {row.name for row in result.rows if row.fresh_ranks_reason} == ON_FRESH_RANKS, table
    assert "10 of " in result.summary_lines["reuse"] and "ran on fresh ranks" in result.summary_lines["reuse"]
