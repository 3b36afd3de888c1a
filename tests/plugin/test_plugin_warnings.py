"""Warnings a test body raises on its ranks reach pytest: summary, `-W error`, `filterwarnings` marks."""

from __future__ import annotations

import pytest
from plugin_runs import Run, mode_params, run_pytest_in

from harness.pytest_plugin.outcomes import RankOutcome, RankWarning, WarningOnRanks, judge

WARNS = """
import warnings
import pytest


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_marked_ignore(dist_env):
    # First: in reuse mode the workers are forked inside this test; its mark must not outlive it there.
    warnings.warn("silenced by the mark")


def test_warns_on_rank_1(dist_env):
    if dist_env.rank == 1:
        warnings.warn("only rank one says this")


def test_warns_on_every_rank_twice(dist_env):
    for _ in range(2):
        warnings.warn("every rank says this", DeprecationWarning)


def test_caught_by_pytest_warns(dist_env):
    with pytest.warns(UserWarning, match="caught in the body"):
        warnings.warn("caught in the body")


def test_category_pytest_never_imported(dist_env):
    from rank_only import RankOnlyWarning

    warnings.warn("from a module only the ranks import", RankOnlyWarning)


def test_fails_and_warns(dist_env):
    warnings.warn("warned before failing")
    assert dist_env.rank == 0, "rank one fails"


def test_fallback_of_the_communicator(communicator):
    pass
"""

RANK_ONLY = "class RankOnlyWarning(Warning):\n    pass\n"

MODES = {
    "fork": ["--dist-reuse", "off"],
    "fork-under-forked": ["--dist-reuse", "off", "--forked"],
    "reuse": ["--dist-reuse", "on"],
    "reuse-under-forked": ["--dist-reuse", "on", "--forked"],
}


def _run(directory, *args: str) -> Run:
    (directory / "test_warns.py").write_text(WARNS)
    (directory / "rank_only.py").write_text(RANK_ONLY)
    # A name that exists on every platform and falls back on CPU: All2AllBackendFallbackWarning at creation.
    return run_pytest_in(directory, "--dist-world-size=2", "--dist-all2all-backend=deepep_low_latency", *args)


@pytest.fixture(scope="module", params=mode_params(MODES))
def warned_run(request, tmp_path_factory) -> tuple[str, Run]:
    """One real pytest run of WARNS per mode, shared by the checks below."""
    return request.param, _run(tmp_path_factory.mktemp(request.param), *MODES[request.param])


def _summary(run: Run) -> str:
    assert "warnings summary" in run.output, run.output
    return run.output.split("warnings summary", 1)[1].split("-- Docs:", 1)[0]


def test_uncaught_warnings_reach_the_summary_naming_the_ranks(warned_run):
    mode, run = warned_run
    summary = _summary(run)
    assert "test_warns.py::test_warns_on_rank_1" in summary, summary
    assert "UserWarning: only rank one says this (on rank 1 of 2)" in summary, summary
    # Raised twice on each rank: once in the summary, with both ranks.
    assert summary.count("DeprecationWarning: every rank says this (on ranks 0, 1 of 2)") == 1, summary
    assert "all2all backend 'deepep_low_latency' is not available on cpu" in summary, summary
    assert "All2AllBackendFallbackWarning" in summary, summary
    # A failing test's warnings are reported too, and its failure still names the rank.
    assert "UserWarning: warned before failing (on ranks 0, 1 of 2)" in summary, summary
    assert run.outcomes["test_fails_and_warns"] == "failed"
    assert "rank 1 of 2 failed" in run.messages["test_fails_and_warns"]


def test_filtered_and_caught_warnings_stay_out(warned_run):
    _, run = warned_run
    summary = _summary(run)
    assert "silenced by the mark" not in summary, summary
    assert "caught in the body" not in summary, summary
    passing = set(run.outcomes) - {"test_fails_and_warns"}
    assert all(run.outcomes[name] == "passed" for name in passing), run.output


def test_a_category_pytest_cannot_resolve_becomes_a_user_warning(warned_run):
    _, run = warned_run
    expected = "rank_only.RankOnlyWarning: from a module only the ranks import (on ranks 0, 1 of 2)"
    assert f"UserWarning: {expected}" in _summary(run), run.output


@pytest.mark.parametrize("mode", ["fork", pytest.param("reuse", marks=pytest.mark.e2e)])
def test_error_filter_fails_the_test_on_the_rank_that_warned(tmp_path, mode):
    run = _run(
        tmp_path,
        *MODES[mode],
        "-W",
        "error::UserWarning",
        "-W",
        "error::communicators.errors.All2AllBackendFallbackWarning",
        "-k",
        "rank_1 or mark or fallback or never_imported",
    )
    assert run.outcomes["test_a_marked_ignore"] == "passed", "the mark's ignore comes before -W error"
    assert run.outcomes["test_warns_on_rank_1"] == "failed", run.output
    message = run.messages["test_warns_on_rank_1"]
    assert "rank 1 of 2 failed: UserWarning: only rank one says this" in message
    assert "rank 0 of 2" not in message
    fallback = run.messages["test_fallback_of_the_communicator"]
    assert "rank 0 of 2 failed: communicators.errors.All2AllBackendFallbackWarning: all2all" in fallback
    # Not a UserWarning on the ranks, so they let it through; pytest, which cannot resolve the category,
    # issues it as one, and the error filter fails the test there.
    unresolved = run.messages["test_category_pytest_never_imported"]
    assert "UserWarning: rank_only.RankOnlyWarning: from a module only the ranks import" in unresolved
    assert "(on ranks 0, 1 of 2)" in unresolved


def test_warnings_are_merged_over_ranks_in_rank_order():
    first = RankWarning("builtins.UserWarning", "a", "t.py", 3)
    second = RankWarning("builtins.DeprecationWarning", "b", "t.py", 4)
    outcomes = [
        RankOutcome(1, "passed", warnings=(second, first)),
        RankOutcome(0, "passed", warnings=(first,)),
    ]
    verdict = judge(2, outcomes, [])
    assert verdict.warnings == (WarningOnRanks(first, (0, 1)), WarningOnRanks(second, (1,)))
