"""`harness matrix [MATRIX] --format github|buildkite|gitlab|ids|json`: the cells fanned out on CI."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

import yaml

from harness.ci.buildkite import buildkite_pipeline
from harness.ci.cell_jobs import ReportJob, cell_jobs, package_installs
from harness.ci.github import github_matrix
from harness.ci.gitlab import gitlab_pipeline
from harness.commands import resolve_matrix_path, selected_cells
from harness.config.matrix import load_matrix

# The pipelines a CI system reads, by --format, and the name the system goes by in messages.
PIPELINES = {"buildkite": (buildkite_pipeline, "Buildkite"), "gitlab": (gitlab_pipeline, "GitLab CI")}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `matrix` subcommand."""
    parser = subparsers.add_parser(
        "matrix",
        help="print the cells for CI: GitHub's strategy.matrix JSON, a Buildkite or GitLab CI pipeline, "
        "ids, or full JSON",
    )
    parser.add_argument("matrix", nargs="?", default=None, help="the matrix file (default: ./matrix.yaml)")
    parser.add_argument(
        "--format",
        choices=("github", "buildkite", "gitlab", "ids", "json"),
        default="github",
        help='github: {"include": [...]} for strategy.matrix (one line, for $GITHUB_OUTPUT); '
        "buildkite: a dynamic pipeline for `buildkite-agent pipeline upload`; gitlab: a child pipeline; "
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
    path = resolve_matrix_path(args.matrix)
    matrix = load_matrix(path)
    cells = selected_cells(matrix, args.cell, args.required)
    if args.format == "github":
        # One line: `echo "matrix=$(harness matrix ...)" >> "$GITHUB_OUTPUT"` takes a single line.
        matrix_json = github_matrix(cell_jobs(cells, path, matrix, "GitHub"))
        print(json.dumps(matrix_json, separators=(",", ":")))
    elif args.format in PIPELINES:
        build, system = PIPELINES[args.format]
        jobs = cell_jobs(cells, path, matrix, system)
        report = ReportJob(path.as_posix(), tuple(args.cell), args.required, package_installs(matrix)[0])
        print(pipeline_yaml(build(jobs, report), args), end="")
    elif args.format == "ids":
        for cell in cells:
            print(cell.id)
    else:
        print(json.dumps({"matrix": str(matrix.path), "cells": [c.to_json() for c in cells]}, indent=2))
    return 0


def pipeline_yaml(pipeline: dict[str, Any], args: argparse.Namespace) -> str:
    """The pipeline as YAML, under a comment saying which command wrote it."""
    words = ["harness", "matrix", *([args.matrix] if args.matrix else []), "--format", args.format]
    words += [word for pattern in args.cell for word in ("--cell", pattern)]
    words += ["--required"] if args.required else []
    header = f"# Written by `{shlex.join(words)}`; edit matrix.yaml, not this.\n"
    return header + yaml.safe_dump(pipeline, sort_keys=False, width=1000)
