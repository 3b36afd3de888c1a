"""Shared by the GitHub tests: a tiny project whose cells really run, `harness` as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Real ranks in a real gloo group: the all_reduce passes everywhere, the second test fails on rank 1 only,
# with characters that Markdown, XML and GitHub's workflow commands must each escape.
TINY_TESTS = """
import torch
import torch.distributed as dist


def test_all_reduce(dist_env):
    x = torch.ones(1)
    dist.all_reduce(x)
    assert x.item() == dist_env.world_size


def test_fails_on_rank_one(dist_env):
    assert dist_env.rank != 1, "rank 1 disagrees: 50% <off>, a,b: c"
"""

TINY_MATRIX = """
version: 1
defaults: {tests: [tests/test_tiny.py], timeout: 300, test_timeout: 60, required: true}
devices:
  cpu: {world_sizes: [1, 2], image: {}, runs_on: [ubuntu-latest]}
  xpu: {world_sizes: [1], image: {}, runs_on: [self-hosted, gpu-intel], required: false}
"""


def write_project(root: Path, matrix: str = TINY_MATRIX) -> Path:
    """A project with tests/test_tiny.py and matrix.yaml in `root`; returns the matrix path."""
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "tests" / "test_tiny.py").write_text(TINY_TESTS)
    path = root / "matrix.yaml"
    path.write_text(textwrap.dedent(matrix).lstrip())
    return path


def harness_env(**extra: str) -> dict[str, str]:
    """The environment of a CI step: plain output, this checkout importable, not inside GitHub Actions."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["CI"] = "true"
    env.pop("GITHUB_ACTIONS", None)
    env.update(extra)
    return env


def harness_command(*args: str) -> list[str]:
    """The argv of `harness ARGS...`."""
    return [sys.executable, "-m", "harness.commands.cli", *args]


def run_harness(*args: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """`harness ARGS...` in a subprocess, as a CI step runs it."""
    return subprocess.run(
        harness_command(*args),
        cwd=cwd,
        env=harness_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
