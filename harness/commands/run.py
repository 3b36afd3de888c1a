"""`harness run [MATRIX]`: run the selected cells, live progress, results under --out, the final table."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from harness.commands import (
    add_matrix_arguments,
    non_negative_int,
    positive_int,
    resolve_matrix_path,
    slurm_options,
)
from harness.common.output_paths import check_output_dir
from harness.running.guardian import RunGuard
from harness.running.runs import plan_matrix, run_plan


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run the matrix's cells and write the results",
        usage="harness run [MATRIX] [options] [-- PYTEST_ARGS...]",
        description="Run the matrix's cells. Arguments after `--` go to every cell's pytest: -k EXPR and "
        "-m EXPR narrow the cell's keyword/markers, -x, --lf (the failed tests of the cell's last run "
        "under the same --out), and any other.",
    )
    add_matrix_arguments(parser)
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="cells at once (default: as many as the host's cores hold; a cpu cell of "
        "world size N wants N cores, and one cell always runs)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="release qualification: exit 3 when a required cell is skipped or errors",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="run a failed distributed test again on fresh ranks up to N times (overrides the matrix's "
        "retries:); one that passes then is flaky: reported, and failing the run only with --strict",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="flake hunt: run every selected distributed test N times on fresh ranks; each cell's log.txt "
        "and junit.xml say how often each failed, with its distinct failures",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="results directory (default: results/)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Plan, run, report; returns 0, 1 (failures), 3 (--strict), 5 (no test ran) or 130 (interrupted)."""
    check_output_dir(args.out, "--out")
    with (
        RunGuard(args.out) as guard,
        plan_matrix(
            resolve_matrix_path(args.matrix),
            args.cell,
            executor=args.executor,
            offline=args.offline,
            run_id=guard.run_id,
            slurm_options=slurm_options(args),
            pytest_args=args.pytest_args,
        ) as plan,
    ):
        overrides = {"repeat": args.repeat, **({"retries": args.retries} if args.retries is not None else {})}
        plan.planned = [
            dataclasses.replace(planned, cell=dataclasses.replace(planned.cell, **overrides))
            for planned in plan.planned
        ]
        return run_plan(plan, args.out, guard, jobs=args.jobs, strict=args.strict)
