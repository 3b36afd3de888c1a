"""The `harness` subcommands, one module each; what several of them share lives here."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console

from harness.errors import ConfigurationError
from harness.executors import open_docker_executor
from harness.matrix import Matrix, load_matrix
from harness.model import Cell, Executor
from harness.plan import ExecutorChoice, PlannedCell, plan_cells
from harness.probe import HostCapabilities, probe_host

DEFAULT_MATRIX = "matrix.yaml"


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (`--jobs`)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    parser.add_argument(
        "--offline",
        action="store_true",
        help="build missing images without a registry (Debian base by debootstrap, wheels from the host), "
        "as `harness images build --offline`",
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


def plan_matrix(
    args: argparse.Namespace, run_id: str | None = None
) -> tuple[Matrix, list[Cell], HostCapabilities, list[PlannedCell], Executor | None]:
    """Load and select the cells, probe the host, decide each cell's executor.

    Also returns the Docker executor that checked the images (None without an engine); the caller
    closes it, or hands it on to run the cells.
    """
    matrix = load_matrix(resolve_matrix_path(args.matrix))
    cells = matrix.select(args.cell)
    choice: ExecutorChoice = args.executor
    host = probe_host(docker=choice != "local")
    docker = None
    if host.docker_available and choice != "local":
        try:
            docker = open_docker_executor(matrix.root, offline=args.offline, run_id=run_id)
        except ConfigurationError as error:
            if choice == "docker":
                raise
            host = dataclasses.replace(host, docker_available=False, docker_reason=str(error))
    image_check = getattr(docker, "image_status", None)
    return matrix, cells, host, plan_cells(cells, host, choice, image_check), docker
