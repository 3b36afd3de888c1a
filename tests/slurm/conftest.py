"""Fixtures of the Slurm tests: a real cluster (or a clear skip/fail) and an executor of one run."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.running.executors.slurm import SlurmExecutor
from harness.running.executors.slurm_jobs import job_name, slurm_gap

REPO_ROOT = Path(__file__).resolve().parents[2]
CELLS = "tests/docker/cells"


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A Slurm cluster that takes jobs; without one, fail in CI (CI=true) and skip elsewhere."""
    gap = slurm_gap()
    if gap:
        message = f"the Slurm tests need a cluster ({gap}); `bash .ci/slurm-cluster.sh` starts one"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: these tests must run, not skip)", pytrace=False)
        pytest.skip(message)


def jobs_named(name: str) -> list[str]:
    """`squeue` lines (id and state) of the jobs called `name`."""
    listed = subprocess.run(
        ["squeue", "-h", "--name", name, "-o", "%i %T"], capture_output=True, text=True, check=True
    )
    return listed.stdout.split("\n")[:-1]


@pytest.fixture
def executor(slurm_cluster: None) -> Iterator[SlurmExecutor]:
    """A SlurmExecutor of a run of its own; after the test, no job of that run may be queued or running."""
    run_id = f"t{uuid.uuid4().hex[:10]}"
    slurm_executor = SlurmExecutor(REPO_ROOT, run_id=run_id, poll_s=0.5)
    yield slurm_executor
    slurm_executor.close()
    assert jobs_named(job_name(run_id)) == [], "jobs left in squeue"
