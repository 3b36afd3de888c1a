"""`harness conformance RESULTS_DIR`: the conformance table of a run (rendered in presentation/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.common.errors import ConfigurationError
from harness.common.output_paths import check_output_file
from harness.presentation.conformance_table import read_outcomes, render_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `conformance` subcommand."""
    parser = subparsers.add_parser(
        "conformance",
        help="a run's conformance table: operation x platform x world size, pass / known gap / FAIL",
        description="Read the merged junit.xml `harness run --out` wrote and write the Markdown table an "
        "engine's maintainers can paste into an issue: one row per operation, one column per platform and "
        "world size, each known gap a numbered note with its recorded reason, then every test's outcome. "
        "Exit 0 written, 2 no results or no conformance tests.",
    )
    parser.add_argument("results", type=Path, help="a `harness run --out` directory (its merged junit.xml)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here (default: stdout)")
    parser.add_argument("--title", default="Conformance", help="the table's heading")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Render the table of `args.results` to stdout or `--out`."""
    check_output_file(args.out, "--out")
    junit = args.results / "junit.xml"
    if not junit.is_file():
        message = f"{junit}: no merged junit.xml; give the directory `harness run --out` wrote"
        raise ConfigurationError(message)
    try:
        outcomes = read_outcomes(junit)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    if not outcomes:
        raise ConfigurationError(f"{junit}: no conformance tests (ids ending in a platform, e.g. [cpu])")
    text = render_table(outcomes, args.title)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0
