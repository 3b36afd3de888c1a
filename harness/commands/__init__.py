"""The `harness` subcommands, one module each; what several of them share lives here."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.common.errors import ConfigurationError
from harness.config.matrix import Matrix
from harness.config.model import Cell, SlurmSpec
from harness.presentation.console import make_console

__all__ = [
    "add_matrix_arguments",
    "make_console",
    "positive_int",
    "resolve_matrix_path",
    "selected_cells",
    "slurm_options",
]

DEFAULT_MATRIX = "matrix.yaml"


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (`--jobs`)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: 0 or more (`--retries`)."""
    return _whole_number(text, 0)


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        message = f"must be a whole number of at least {least}, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
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
        choices=("auto", "local", "docker", "slurm"),
        default="auto",
        help="auto: the matrix's executor per device, else Docker where an engine answers and the image "
        "exists, else on the host; slurm: each cell a Slurm job",
    )
    add_slurm_arguments(parser)
    parser.add_argument(
        "--offline",
        action="store_true",
        help="build missing images without a registry (Debian base by debootstrap, wheels from the host), "
        "as `harness images build --offline`",
    )


def add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    """--slurm-*: the lab's Slurm options, over the matrix's `slurm:` (harness/running/executors/slurm.py)."""
    group = parser.add_argument_group("Slurm (cells that run as Slurm jobs)")
    group.add_argument("--slurm-partition", metavar="NAME")
    group.add_argument("--slurm-account", metavar="NAME")
    group.add_argument("--slurm-qos", metavar="NAME")
    group.add_argument(
        "--slurm-arg", action="append", default=[], metavar="ARG", help="a further sbatch option (repeatable)"
    )
    group.add_argument(
        "--slurm-results-dir",
        metavar="DIR",
        help="a directory every node mounts at the same path, where jobs write (default: --out)",
    )
    group.add_argument(
        "--slurm-container-image", metavar="IMAGE", help="srun --container-image (pyxis/enroot) for each node"
    )


def slurm_options(args: argparse.Namespace) -> SlurmSpec:
    """The --slurm-* options of a parsed command line; `SlurmSpec.with_command_line` puts them over the
    matrix's."""
    return SlurmSpec(
        partition=args.slurm_partition,
        account=args.slurm_account,
        qos=args.slurm_qos,
        sbatch_args=tuple(args.slurm_arg),
        results_dir=args.slurm_results_dir,
        container_image=args.slurm_container_image,
    )


def resolve_matrix_path(argument: str | None) -> Path:
    """The matrix file named on the command line, or ./matrix.yaml."""
    if argument is not None:
        return Path(argument)
    path = Path(DEFAULT_MATRIX)
    if not path.is_file():
        raise ConfigurationError(f"no {DEFAULT_MATRIX} in {Path.cwd()}; pass the path of a matrix file.")
    return path


def selected_cells(matrix: Matrix, patterns: list[str], required_only: bool) -> list[Cell]:
    """The cells `--cell PATTERN...` and `--required` select, in matrix order (CI fan-outs, reports)."""
    return [cell for cell in matrix.select(patterns) if cell.required or not required_only]
