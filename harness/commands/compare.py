"""`harness compare BASE NEW`: what changed per cell and test between two results; bench rows with noise."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.commands import make_console
from harness.common.errors import ConfigurationError
from harness.common.output_paths import check_output_file
from harness.common.untrusted_text import print_line
from harness.presentation.compare import MARKDOWN_LIMIT_BYTES, render_markdown, terminal_tables, verdict_line
from harness.results.compare import compare
from harness.results.compare.bench_rows import DEFAULT_THRESHOLD
from harness.results.compare.changes import KINDS, AllowRule
from harness.results.files import write_new
from harness.results.records import resolve_results


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compare` subcommand."""
    parser = subparsers.add_parser(
        "compare",
        help="what changed from one run, artifacts or record to another (tests, cells, environment, bench)",
        description="Compare two results: `harness run --out` directories, merged CI artifacts, or records "
        "(a folder, or a record's name under ./qualification/). Cells are matched by id. Exit 0 no "
        "regression, 1 a test or cell regressed, 4 only bench rows regressed beyond their noise, 2 bad "
        "input. Kinds of change: "
        + "; ".join(f"{kind}{' (regression)' if bad else ''}" for kind, (bad, _) in KINDS.items()),
    )
    parser.add_argument("base", metavar="BASE", help="the results compared against (the last release, main)")
    parser.add_argument("new", metavar="NEW", help="the results judged")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="KIND[:CELL[:TEST]]",
        help="accept the regressions it matches (globs), e.g. 'gone:cpu-*', "
        "'bench-slower:bench-cuda-ws2:all_gather*' (repeatable)",
    )
    parser.add_argument(
        "--bench-threshold",
        type=float,
        default=DEFAULT_THRESHOLD * 100,
        metavar="PCT",
        help="the least change of a bench row worth a verdict, beyond its noise "
        f"(default {DEFAULT_THRESHOLD * 100:.0f})",
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the comparison as JSON here")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Compare, print the tables, write the files asked for; the comparison's exit code."""
    if not 0 <= args.bench_threshold < 100:
        raise ConfigurationError(f"--bench-threshold {args.bench_threshold}: give a percentage from 0 to 100")
    for path, option in ((args.markdown, "--markdown"), (args.json, "--json")):
        check_output_file(path, option)
    rules = [AllowRule.parse(text) for text in args.allow]
    comparison = compare(
        resolve_results(args.base, "BASE"),
        resolve_results(args.new, "NEW"),
        threshold=args.bench_threshold / 100,
        allow=rules,
    )
    if args.markdown is not None:
        write_new(args.markdown, render_markdown(comparison, MARKDOWN_LIMIT_BYTES).encode("utf-8"))
    if args.json is not None:
        write_new(args.json, (json.dumps(comparison.to_json(), indent=2) + "\n").encode("utf-8"))
    console = make_console()
    for shown in terminal_tables(comparison):
        console.print(shown) if not isinstance(shown, str) else print_line(console, shown)
    for note in comparison.notes:
        print_line(console, f"note: {note}")
    print_line(console, verdict_line(comparison), "bold")
    return comparison.exit_code
