"""The action's `harness run` step, its shell script run verbatim: a cell that cannot run on the runner
fails the job (exit 5, no test ran), and an empty `cell` input is an error naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker

MATRIX = "version: 1\ndefaults: {tests: [tests]}\ndevices:\n  xpu: {world_sizes: [1], image: {}}\n"


def run_step(project: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
    """The action's `harness run` step's script under bash, with its inputs as the action passes them."""
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    script = next(s for s in action["runs"]["steps"] if s.get("name") == "harness run")["run"]
    # `harness` as the job has it: this checkout's, on PATH.
    bin_dir = project / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "harness").write_text(f'#!/bin/sh\nexec {sys.executable} -m harness.commands.cli "$@"\n')
    (bin_dir / "harness").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "GITHUB_OUTPUT": str(project / "github_output"),
        "MATRIX": "matrix.yaml",
        "PYTEST_ARGS": "",
        **inputs,
    }
    return subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_skipped_cell_fails_its_job_and_an_empty_cell_is_an_error(tmp_path: Path, docker_client: Any):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_one.py").write_text("def test_one():\n    pass\n")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    skipped = run_step(tmp_path, CELL="xpu-xccl-ws1")
    assert skipped.returncode == 5, skipped.stdout + skipped.stderr
    assert "no test ran: every cell was skipped" in skipped.stdout
    assert (tmp_path / "github_output").read_text() == "results=results/xpu-xccl-ws1\n"
    empty = run_step(tmp_path, CELL="")
    assert empty.returncode == 2 and "the input `cell` is empty" in empty.stdout
