"""Fork mode, in the pytest process (or pytest-forked's child of it): fresh ranks for one test."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from harness.pytest_plugin.lifetime import die_with_parent
from harness.pytest_plugin.outcomes import Verdict, judge
from harness.pytest_plugin.rank import run_one_test
from harness.pytest_plugin.rank_processes import RankProcesses
from harness.pytest_plugin.settings import DistSettings

# Once a rank has failed, the others are probably blocked in a collective that will never complete.
GRACE_AFTER_FAILURE_S = 5.0
# Ranks that reported get this long to leave their process group before they are killed.
EXIT_AFTER_REPORT_S = 2.0


def run_in_fresh_ranks(item: pytest.Function, settings: DistSettings, pytest_pid: int) -> Verdict:
    """Fork `world_size` ranks for this test alone, run its body on each, and judge their outcomes."""
    if os.getpid() != pytest_pid:
        # We are pytest-forked's throwaway child of pytest: tie it to pytest's life so that killing pytest
        # kills it, and with it (through their own PDEATHSIG) the ranks.
        die_with_parent(pytest_pid)
    import torch.distributed  # noqa: F401  imported once here, not once in every rank after the fork

    deadline = time.monotonic() + settings.timeout_s
    with tempfile.TemporaryDirectory(prefix="comm-harness-ranks-") as workdir:
        store_path = os.path.join(workdir, "store")  # a rendezvous no parallel run can share
        with RankProcesses(settings.world_size, Path(workdir)) as ranks:
            ranks.start(
                lambda rank, results, _requests: run_one_test(item, settings, rank, store_path, results)
            )
            outcomes, problems = ranks.collect(
                deadline, settings.timeout_s, min(GRACE_AFTER_FAILURE_S, settings.timeout_s)
            )
            traces = ranks.traces()
            ranks.wait_for_exit(EXIT_AFTER_REPORT_S)
    return judge(settings.world_size, outcomes, problems, traces)
