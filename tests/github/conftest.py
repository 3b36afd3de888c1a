"""Fixtures for the GitHub tests: two real `harness run`s, as two cell jobs on two machines make them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from github_runs import harness_command, harness_env, write_project


@dataclass(frozen=True)
class TwoRuns:
    """A project and the results of its cpu cells, each run on its own as a CI cell job runs it."""

    root: Path
    matrix: Path
    passing: Path  # results/cpu-gloo-ws1: every test passes at world size 1
    failing: Path  # results/cpu-gloo-ws2: test_fails_on_rank_one fails on rank 1


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    """Run cpu-gloo-ws1 and cpu-gloo-ws2 in two `harness run`s at once (real ranks, local executor)."""
    root = tmp_path_factory.mktemp("project")
    matrix = write_project(root)
    runs = {}
    for cell in ("cpu-gloo-ws1", "cpu-gloo-ws2"):
        out = root / "results" / cell
        command = harness_command(
            "run", "matrix.yaml", "--cell", cell, "--executor", "local", "--out", str(out)
        )
        runs[cell] = (
            out,
            subprocess.Popen(command, cwd=root, env=harness_env(), stdout=subprocess.PIPE, text=True),
        )
    outputs = {
        cell: (out, process.communicate(timeout=300)[0], process.returncode)
        for cell, (out, process) in runs.items()
    }
    assert outputs["cpu-gloo-ws1"][2] == 0, outputs["cpu-gloo-ws1"][1]
    assert outputs["cpu-gloo-ws2"][2] == 1, outputs["cpu-gloo-ws2"][1]
    return TwoRuns(root, matrix, outputs["cpu-gloo-ws1"][0], outputs["cpu-gloo-ws2"][0])
