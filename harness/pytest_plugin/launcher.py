"""Fork mode, in the pytest process (or pytest-forked's child of it): fresh ranks for one test."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import pytest

from harness.pytest_plugin.lifetime import die_with_parent
from harness.pytest_plugin.nodes import ranks_of_node
from harness.pytest_plugin.outcomes import Verdict, judge
from harness.pytest_plugin.rank import run_one_test
from harness.pytest_plugin.rank_processes import RankProcesses, RanksInterrupted
from harness.pytest_plugin.settings import DistSettings

# Once a rank has failed, the others are probably blocked in a collective that will never complete.
GRACE_AFTER_FAILURE_S = 5.0
# Ranks that reported get this long to leave their process group before they are killed.
EXIT_AFTER_REPORT_S = 2.0
# Runs of each test in this process: with nodes in several processes, the n-th run of a test on every node
# meets under the same store key.
_RUN_OF_TEST: dict[str, int] = {}


def run_in_fresh_ranks(item: pytest.Function, settings: DistSettings, pytest_pid: int) -> Verdict:
    """Fork this node's ranks (all `world_size` unless one node of several runs here) for this test alone,
    run its body on each, and judge their outcomes."""
    if os.getpid() != pytest_pid:
        # We are pytest-forked's throwaway child of pytest: tie it to pytest's life so that killing pytest
        # kills it, and with it (through their own PDEATHSIG) the ranks.
        die_with_parent(pytest_pid)
    import torch.distributed  # noqa: F401  imported once here, not once in every rank after the fork

    deadline = time.monotonic() + settings.timeout_s
    here = ranks_of_node(settings)
    with tempfile.TemporaryDirectory(prefix="comm-harness-ranks-") as workdir:
        if settings.node_rank is None:
            rendezvous = os.path.join(workdir, "store")  # a rendezvous no parallel run can share
        else:
            _RUN_OF_TEST[item.nodeid] = _RUN_OF_TEST.get(item.nodeid, -1) + 1
            rendezvous = f"{item.nodeid}#{_RUN_OF_TEST[item.nodeid]}/"
        with RankProcesses(len(here), Path(workdir)) as ranks:
            ranks.start(
                lambda index, results, _requests: run_one_test(
                    item, settings, here[index], rendezvous, results
                )
            )
            try:
                outcomes, problems = ranks.collect(
                    deadline, settings.timeout_s, min(GRACE_AFTER_FAILURE_S, settings.timeout_s)
                )
            except RanksInterrupted as interrupted:
                raise RanksInterrupted(
                    settings.world_size,
                    [here[rank] for rank in interrupted.finished],
                    {here[rank]: stack for rank, stack in interrupted.stacks.items()},
                ) from None
            traces = ranks.traces()
            ranks.wait_for_exit(EXIT_AFTER_REPORT_S)
    # RankProcesses numbers its processes from 0; on node k they are ranks here[0], here[1], ... The traces
    # too: the desync verdict matches them to the groups' global ranks and names ranks by them.
    problems = [dataclasses.replace(problem, rank=here[problem.rank]) for problem in problems]
    traces = [
        None if trace is None else dataclasses.replace(trace, rank=here[trace.rank]) for trace in traces
    ]
    return judge(settings.world_size, outcomes, problems, traces)
