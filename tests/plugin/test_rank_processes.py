"""The pytest process's reading of its forked ranks (RankProcesses.collect), on real forked processes: which
rank a "still running" problem blames, and what a timeout says."""

from __future__ import annotations

import time

from harness.pytest_plugin.outcomes import RankOutcome
from harness.pytest_plugin.rank_processes import RankProcesses


def fail_after(delay_s: float):
    def rank_main(rank, results, _requests) -> None:
        time.sleep(delay_s)
        results.send(RankOutcome(rank, "failed", f"rank {rank} failed"))

    return rank_main


def hang(rank, results, _requests) -> None:
    time.sleep(120)


def test_ranks_left_running_are_blamed_on_the_first_rank_that_failed(tmp_path):
    # Rank 1 fails at once, rank 2 a little later, rank 0 never returns: rank 0 was stopped for rank 1.
    mains = {0: hang, 1: fail_after(0.0), 2: fail_after(0.5)}
    with RankProcesses(3, tmp_path) as ranks:
        ranks.start(lambda rank, results, requests: mains[rank](rank, results, requests))
        outcomes, problems = ranks.collect(time.monotonic() + 60, 60, grace_s=3.0)
    assert [outcome.rank for outcome in outcomes] == [1, 2]
    assert [(problem.rank, problem.what, problem.running) for problem in problems] == [
        (0, "still running 3 s after rank 1 ended; stopped", True)
    ]


def test_ranks_running_at_the_deadline_are_reported_as_timed_out(tmp_path):
    with RankProcesses(2, tmp_path) as ranks:
        ranks.start(hang)
        outcomes, problems = ranks.collect(time.monotonic() + 1.0, 1.0, grace_s=1.0)
    assert outcomes == []
    assert [(problem.rank, problem.what) for problem in problems] == [
        (0, "timed out after 1 s (--dist-timeout)"),
        (1, "timed out after 1 s (--dist-timeout)"),
    ]
    assert all("hang" in (problem.stack or "") for problem in problems)  # where each rank was, read back
