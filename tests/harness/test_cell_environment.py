"""What a cell's tests see in their environment: its shape as torchrun gives it, and the matrix's `env`."""

from __future__ import annotations

import socket
from pathlib import Path

from harness.cell.runner import build_pytest_environment
from harness.config.model import Cell
from harness.running.executors.local import LocalExecutor

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


def test_a_node_of_a_multi_node_cell_keeps_the_rendezvous_its_executor_named() -> None:
    from harness.cell.runner import cell_shape_environment
    from harness.config.model import Cell

    cell = Cell(id="cpu-gloo-ws4-n2", device="cpu", backend="gloo", world_size=4, tests=("t",), nodes=2)
    node = {"HARNESS_NODE_RANK": "1", "MASTER_ADDR": "node0-of-the-cell", "MASTER_PORT": "29500"}

    shape = cell_shape_environment(cell, node)

    assert (shape["MASTER_ADDR"], shape["MASTER_PORT"]) == ("node0-of-the-cell", "29500")
    assert (shape["WORLD_SIZE"], shape["LOCAL_WORLD_SIZE"]) == ("4", "2")
    alone = cell_shape_environment(cell, {})
    assert alone["MASTER_ADDR"] == "127.0.0.1" and int(alone["MASTER_PORT"]) > 0
