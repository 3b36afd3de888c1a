"""Shared by the harness tests: the repo root, a tiny distributed test file, `harness` as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# A distributed test file the tiny matrices run: real ranks, a real gloo group, a real all_reduce.
TINY_TESTS = """
import os
import torch
import torch.distributed as dist


def test_all_reduce_sums_ranks(dist_env):
    x = torch.tensor([float(dist_env.rank + 1)])
    dist.all_reduce(x)
    n = dist_env.world_size
    assert x.item() == n * (n + 1) / 2


def test_sees_cell_params(dist_env):
    assert os.environ["HARNESS_PARAM_FLAVOUR"] in ("plain", "spicy")


def test_not_distributed():
    assert 1 + 1 == 2
"""


# Each rank records its pid, then hangs: the cell must be stopped and leave no process behind.
HANGING_TEST = """
import os
import time


def test_hangs(dist_env):
    with open(os.environ["PID_FILE"], "a") as stream:
        stream.write(f"{os.getpid()}\\n")
    time.sleep(600)
"""


def harness_env(**extra: str) -> dict[str, str]:
    """The environment a CI job gives `harness`: plain output, this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["CI"] = "true"
    env.update(extra)
    return env


def run_harness(
    *args: str, cwd: Path, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`harness ARGS...` in a subprocess, as a user would run it (in `env`, default `harness_env()`)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.commands.cli", *args],
        cwd=cwd,
        env=env or harness_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
