"""`harness report DIR...`: one summary from results of cells run on different machines (CI artifacts)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.bench.floors import load_floors
from harness.commands import make_console, selected_cells
from harness.common.errors import ConfigurationError
from harness.common.output_paths import check_output_file
from harness.common.untrusted_text import print_line
from harness.config.matrix import load_matrix
from harness.config.model import Cell
from harness.presentation.github_annotations import in_github_actions
from harness.presentation.markdown import (
    MARKDOWN_LIMIT_BYTES,
    annotations,
    render_markdown,
    render_table,
)
from harness.presentation.problems import print_problems
from harness.results.files import write_new
from harness.results.merge import merge_results
from harness.results.report import ResultsReport, report_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="merge result directories (e.g. CI artifacts) into one summary",
        description="Merge `harness run --out` directories and cell directories into one report. Exit 0, "
        "1 when a cell failed, errored or is missing or a bench failed, 2 on bad input, 3 with --strict "
        "when a required cell is skipped, errored or missing, 5 when no test executed in any cell.",
    )
    parser.add_argument(
        "dirs", nargs="+", type=Path, metavar="DIR", help="run or cell directories, or directories of them"
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown report here")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write the merged JUnit XML here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the merged summary as JSON here")
    parser.add_argument(
        "--strict", action="store_true", help="exit 3 when a required cell is skipped, errored or missing"
    )
    parser.add_argument(
        "--matrix",
        type=Path,
        metavar="FILE",
        help="the cells to expect: any found in no DIR is reported missing (an error)",
    )
    parser.add_argument(
        "--cell", action="append", default=[], metavar="PATTERN", help="with --matrix: expect only these"
    )
    parser.add_argument("--required", action="store_true", help="with --matrix: expect only required cells")
    parser.add_argument(
        "--floors", type=Path, metavar="FILE", help="judge bench documents found in the DIRs against these"
    )
    parser.add_argument(
        "--markdown-limit",
        type=int,
        default=MARKDOWN_LIMIT_BYTES,
        metavar="BYTES",
        help=f"cap the Markdown at this size (default {MARKDOWN_LIMIT_BYTES}: GitHub keeps 1 MiB per step)",
    )
    parser.set_defaults(handler=handle)


def expected_cells(args: argparse.Namespace) -> list[Cell] | None:
    """The cells --matrix, --cell and --required name, or None without --matrix."""
    if args.matrix is None:
        if args.cell or args.required:
            raise ConfigurationError("--cell and --required select cells of --matrix FILE; pass it too")
        return None
    return selected_cells(load_matrix(args.matrix), args.cell, args.required)


def handle(args: argparse.Namespace) -> int:
    """Merge, print the table, write the files asked for; annotations when run in GitHub Actions."""
    if args.markdown_limit < 10_000:
        raise ConfigurationError(f"--markdown-limit {args.markdown_limit}: give at least 10000 bytes")
    for path, option in ((args.markdown, "--markdown"), (args.junit, "--junit"), (args.json, "--json")):
        check_output_file(path, option)
    floors = load_floors(args.floors) if args.floors else []
    # The merged junit.xml is written as the cells' files are read, each once (a 64 MiB junit.xml of
    # 600,000 failures is read in seconds, not twice).
    report = merge_results(
        args.dirs, expected=expected_cells(args), strict=args.strict, floors=floors, junit=args.junit
    )
    write_outputs(report, markdown=args.markdown, json_path=args.json, limit=args.markdown_limit)
    print_report(report)
    return report.exit_code


def write_outputs(
    report: ResultsReport, *, markdown: Path | None, json_path: Path | None, limit: int
) -> None:
    """Write the Markdown and JSON files that were asked for (their paths were checked first)."""
    if markdown is not None:
        write_new(markdown, render_markdown(report, limit).encode("utf-8"))
    if json_path is not None:
        document = report_json(report, json_path.resolve().parent)
        write_new(json_path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))


def print_report(report: ResultsReport) -> None:
    """The table and what went wrong on stdout; GitHub annotations too when run in Actions.

    Everything but the table's frame comes from the results read: each line goes through `print_line`.
    """
    console = make_console()
    console.print(render_table(report))
    for note in report.summary.notes:
        print_line(console, f"note: {note}")
    print_problems(console, report)
    if in_github_actions():
        # Workflow commands must reach stdout unwrapped and unstyled; `annotation` escaped the cells' words.
        for line in annotations(report):
            print(line, flush=True)
    cells = f"{len(report.cells)} cell{'' if len(report.cells) == 1 else 's'}"
    console.print(f"{cells} · exit code {report.exit_code}")
