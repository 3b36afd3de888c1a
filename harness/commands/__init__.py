"""The `harness` subcommands, one module each; what several of them share lives here."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harness.errors import ConfigurationError
from harness.executors import docker_image_check
from harness.matrix import Matrix, load_matrix
from harness.model import Cell
from harness.plan import ExecutorChoice, PlannedCell, plan_cells
from harness.probe import HostCapabilities, probe_host

DEFAULT_MATRIX = "matrix.yaml"


def add_matrix_arguments(parser: argparse.ArgumentParser) -> None:
    """MATRIX, --cell and --executor: how every matrix command chooses its cells."""
    parser.add_argument(
        "matrix", nargs="?", default=None, help=f"the matrix file (default: ./{DEFAULT_MATRIX})"
    )
    parser.add_argument(
        "--cell",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only cells whose id matches this glob (repeatable), e.g. 'cpu-*' or cpu-gloo-ws4",
    )
    parser.add_argument(
        "--executor",
        choices=("auto", "local", "docker"),
        default="auto",
        help="auto: Docker where an engine answers and the image exists, else on the host",
    )


def resolve_matrix_path(argument: str | None) -> Path:
    """The matrix file named on the command line, or ./matrix.yaml."""
    if argument is not None:
        return Path(argument)
    path = Path(DEFAULT_MATRIX)
    if not path.is_file():
        raise ConfigurationError(f"no {DEFAULT_MATRIX} in {Path.cwd()}; pass the path of a matrix file.")
    return path


def make_console() -> Console:
    """stdout; wide enough in CI logs that the result table is not wrapped."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def plan_matrix(args: argparse.Namespace) -> tuple[Matrix, list[Cell], HostCapabilities, list[PlannedCell]]:
    """Load and select the cells, probe the host and decide each cell's executor."""
    matrix = load_matrix(resolve_matrix_path(args.matrix))
    cells = matrix.select(args.cell)
    choice: ExecutorChoice = args.executor
    host = probe_host(docker=choice != "local")
    image_check = docker_image_check(matrix.root) if host.docker_available and choice != "local" else None
    return matrix, cells, host, plan_cells(cells, host, choice, image_check)
