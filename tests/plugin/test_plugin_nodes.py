"""Nodes emulated on one host: ranks grouped into nodes as under torchrun, on gloo (`--dist-nodes` alone)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from plugin_runs import REPO_ROOT, run_pytest_in

LAYOUT_TEST = Path(REPO_ROOT) / "tests" / "communicators" / "test_node_layout.py"


@pytest.mark.e2e
def test_four_ranks_over_two_emulated_nodes_have_torchrun_s_layout(tmp_path):
    shutil.copy(LAYOUT_TEST, tmp_path / LAYOUT_TEST.name)
    run = run_pytest_in(tmp_path, "--dist-world-size=4", "--dist-nodes=2")
    assert run.outcomes == {"test_ranks_are_laid_out_over_nodes_as_under_torchrun": "passed"}, run.output
    assert "world size 4 over 2 nodes (emulated here)" in run.output


def test_a_node_of_several_needs_node_0_s_address(tmp_path):
    shutil.copy(LAYOUT_TEST, tmp_path / LAYOUT_TEST.name)
    run = run_pytest_in(tmp_path, "--dist-world-size=4", "--dist-nodes=2", "--dist-node-rank=1")
    assert run.ret == 4, run.output  # a usage error, before any rank is forked
    assert "--dist-node-rank needs MASTER_ADDR and MASTER_PORT" in run.output
