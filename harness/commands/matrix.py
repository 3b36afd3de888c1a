"""`harness matrix [MATRIX] --format github|ids|json`: the cells for a CI fan-out, one entry per cell."""

from __future__ import annotations

import argparse
import json

from harness.commands import resolve_matrix_path
from harness.github import github_matrix
from harness.matrix import load_matrix


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `matrix` subcommand."""
    parser = subparsers.add_parser(
        "matrix", help="print the cells for CI: GitHub's strategy.matrix JSON, ids, or full JSON"
    )
    parser.add_argument("matrix", nargs="?", default=None, help="the matrix file (default: ./matrix.yaml)")
    parser.add_argument(
        "--format",
        choices=("github", "ids", "json"),
        default="github",
        help='github: {"include": [...]} for strategy.matrix (one line, for $GITHUB_OUTPUT); '
        "ids: one cell id per line; json: every cell's settings",
    )
    parser.add_argument(
        "--cell",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only cells whose id matches this glob (repeatable), as for `harness run`",
    )
    parser.add_argument(
        "--required", action="store_true", help="only required cells (what release qualification runs)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the selected cells; exit 2 on a bad matrix or a pattern that matches no cell."""
    matrix = load_matrix(resolve_matrix_path(args.matrix))
    cells = [cell for cell in matrix.select(args.cell) if cell.required or not args.required]
    if args.format == "github":
        # One line: `echo "matrix=$(harness matrix ...)" >> "$GITHUB_OUTPUT"` takes a single line.
        print(json.dumps(github_matrix(cells, matrix.root), separators=(",", ":")))
    elif args.format == "ids":
        for cell in cells:
            print(cell.id)
    else:
        print(json.dumps({"matrix": str(matrix.path), "cells": [c.to_json() for c in cells]}, indent=2))
    return 0
