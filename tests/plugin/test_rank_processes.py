"""The pytest process's reading of its forked ranks (RankProcesses.collect), on real forked processes: which
rank a "still running" problem blames, what a timeout says, and what Ctrl-C says."""

from __future__ import annotations

import os
import signal
import time

import pytest

from harness.pytest_plugin.outcomes import RankOutcome
from harness.pytest_plugin.rank_processes import RankProcesses, RanksInterrupted


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


def pass_at_once(rank, results, _requests) -> None:
    results.send(RankOutcome(rank, "passed", ""))


def test_ctrl_c_while_ranks_run_says_which_had_finished_and_where_the_others_are(tmp_path):
    mains = {0: pass_at_once, 1: hang, 2: hang}
    # Ctrl-C, as the cell runner forwards it to pytest, once rank 0 has reported.
    previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with RankProcesses(3, tmp_path) as ranks, pytest.raises(RanksInterrupted) as interrupted:
            ranks.start(lambda rank, results, requests: mains[rank](rank, results, requests))
            ranks.collect(time.monotonic() + 60, 60, grace_s=3.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert isinstance(interrupted.value, KeyboardInterrupt)  # pytest still stops the session
    assert (interrupted.value.world_size, interrupted.value.finished) == (3, [0])
    assert interrupted.value.running == [1, 2]
    assert all("in hang" in interrupted.value.stacks[rank] for rank in (1, 2))
