"""The cell runner's pytest command line is read by the plugin's own option table as the cell meant it."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cell.runner import build_pytest_command, build_pytest_environment
from harness.common.contract import param_env
from harness.config.model import Cell
from harness.pytest_plugin import options


class ArgparseGroup:
    """pytest's option group, as far as `DistOption.declare` uses it: argparse underneath, as in pytest."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(exit_on_error=False)

    def addoption(self, *names: str, **settings: object) -> None:
        self.parser.add_argument(*names, **settings)


def parsed_by_the_plugin(command: list[str]) -> argparse.Namespace:
    group = ArgparseGroup()
    for option in options.DIST_OPTIONS:
        option.declare(group)  # type: ignore[arg-type]
    namespace, _ = group.parser.parse_known_args(command)
    return namespace


def test_every_cell_setting_reaches_the_plugin_as_the_cell_meant_it(tmp_path: Path):
    cell = Cell(
        "cuda-nccl-ws4-n2",
        "cuda",
        "nccl",
        4,
        ("tests/communicators",),
        nodes=2,
        params={"all2all_backend": "naive", "communicator": "vllm"},
        check_collectives=True,
        retries=2,
        repeat=3,
        test_timeout_s=45.5,
    )
    seen = parsed_by_the_plugin(build_pytest_command(cell, tmp_path, load_plugin=False, node_rank="1"))
    assert vars(seen) == {
        options.DEVICE.dest: "cuda",
        options.WORLD_SIZE.dest: 4,
        options.NODES.dest: 2,
        options.NODE_RANK.dest: 1,
        options.TIMEOUT.dest: 45.5,
        options.REUSE.dest: "auto",
        options.ALL2ALL_BACKEND.dest: "naive",
        options.CHECK_COLLECTIVES.dest: True,
        options.TRACE_COLLECTIVES.dest: "on",
        options.COMMUNICATOR.dest: "vllm",
        options.RETRIES.dest: 2,
        options.REPEAT.dest: 3,
        options.PROGRESS.dest: str(tmp_path / "progress.jsonl"),
    }


def test_a_plain_cell_leaves_the_plugins_defaults_and_runs_every_node_here(tmp_path: Path):
    cell = Cell("cpu-gloo-ws2", "cpu", "gloo", 2, ("tests/communicators",))
    command = build_pytest_command(cell, tmp_path, load_plugin=False, node_rank="1")
    seen = parsed_by_the_plugin(command)
    assert (seen.dist_world_size, seen.dist_timeout) == (2, 120.0)
    for option in (
        options.NODES,
        options.NODE_RANK,
        options.ALL2ALL_BACKEND,
        options.CHECK_COLLECTIVES,
        options.COMMUNICATOR,
        options.RETRIES,
        options.REPEAT,
    ):
        assert option.flag not in command
        assert getattr(seen, option.dest) == option.default


def test_the_timeout_is_written_as_a_person_would_type_it(tmp_path: Path):
    cell = Cell("cpu-gloo-ws2", "cpu", "gloo", 2, ("t.py",), test_timeout_s=45.0)
    command = build_pytest_command(cell, tmp_path, load_plugin=False)
    assert command[command.index(options.TIMEOUT.flag) + 1] == "45"


def test_params_reach_the_tests_under_their_contract_names(tmp_path: Path):
    cell = Cell("cpu-gloo-ws2", "cpu", "gloo", 2, ("t.py",), params={"vllm": "0.11.0"})
    env = build_pytest_environment(cell, tmp_path)
    assert env[param_env("vllm")] == env["HARNESS_PARAM_VLLM"] == "0.11.0"
