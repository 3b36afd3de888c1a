"""`harness plan [MATRIX] [--json]`: every cell, and what would run it here or why it is skipped."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from harness.commands import add_matrix_arguments, make_console, resolve_matrix_path
from harness.planning.plan import oversubscription_warnings
from harness.running.runs import plan_matrix


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `plan` subcommand."""
    parser = subparsers.add_parser("plan", help="show the cells and how each would run on this host")
    add_matrix_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the plan; exit 0 (configuration errors exit 2 through HarnessError)."""
    with plan_matrix(
        resolve_matrix_path(args.matrix), args.cell, executor=args.executor, offline=args.offline
    ) as plan:
        matrix, host, planned = plan.matrix, plan.host, plan.planned
    console = make_console()
    if args.json:
        document = {
            "matrix": str(matrix.path),
            "host": host.to_json(),
            "cells": [p.to_json() for p in planned],
        }
        print(json.dumps(document, indent=2))
        return 0
    table = Table(title=f"{matrix.path}: {len(planned)} cells")
    for column in ("cell", "required", "runs with", "why"):
        table.add_column(column)
    for p in planned:
        runs_with = p.executor or "[yellow]skipped[/]"
        table.add_row(p.cell.id, "yes" if p.cell.required else "no", runs_with, p.reason)
    console.print(table)
    for line in oversubscription_warnings(planned, host.cores):
        console.print(line, markup=False)
    return 0
