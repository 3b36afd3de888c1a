"""What a cell's tests see in their environment: its shape as torchrun gives it, and the matrix's `env`."""

from __future__ import annotations

import socket
from pathlib import Path

from harness.cell_runner import build_pytest_environment
from harness.executors.local import LocalExecutor
from harness.model import Cell

# A suite that starts its own ranks (as PyTorch's MultiProcessTestCase does) reads the shape from torchrun's
# variables; this one checks them from a test that does not use dist_env.
SHAPE_TESTS = """
import os


def test_sees_the_cell_shape():
    sizes = {os.environ[name] for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "HARNESS_WORLD_SIZE")}
    assert sizes == {"3"}
    assert os.environ["HARNESS_CELL"] == "cpu-gloo-ws3" and os.environ["HARNESS_DEVICE"] == "cpu"
    assert os.environ["MASTER_ADDR"] == "127.0.0.1" and int(os.environ["MASTER_PORT"]) > 0
    assert os.environ["OVERRIDDEN"] == "by the matrix"
"""


def cell(**fields) -> Cell:
    defaults = dict(id="cpu-gloo-ws3", device="cpu", backend="gloo", world_size=3, tests=("test_shape.py",))
    return Cell(**{**defaults, **fields})


def test_the_shape_is_torchruns_and_the_matrix_env_wins(tmp_path: Path):
    env = build_pytest_environment(cell(env={"MASTER_ADDR": "10.0.0.7", "WORLD_SIZE": "8"}), tmp_path)
    assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["HARNESS_WORLD_SIZE"]) == ("8", "3", "3")
    assert (env["MASTER_ADDR"], env["HARNESS_CELL"]) == ("10.0.0.7", "cpu-gloo-ws3")
    assert env["HARNESS_DEVICE"] == "cpu"
    # The port is free: a rendezvous can listen on it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", int(env["MASTER_PORT"])))


def test_a_test_without_dist_env_runs_with_the_shape(tmp_path: Path):
    (tmp_path / "test_shape.py").write_text(SHAPE_TESTS)
    shaped = cell(env={"OVERRIDDEN": "by the matrix"}, pytest_args=())
    result = LocalExecutor(tmp_path).run(shaped, tmp_path / "results", [], lambda cell_id, event: None)
    assert (result.status, result.counts.passed) == ("passed", 1), result.reason
