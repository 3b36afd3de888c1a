"""The `harness` command: one argparse subcommand per module under harness/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import EXIT_INTERRUPTED, HarnessError
from harness.untrusted_text import log_line

# Each module has `register(subparsers)`, which sets a `handler(args) -> int` default on its parser.
COMMAND_MODULES = [
    "harness.commands.plan",
    "harness.commands.run",
    "harness.commands.doctor",
    "harness.commands.images",
    "harness.commands.bench",
    "harness.commands.matrix",
    "harness.commands.report",
    "harness.commands.qualify",
    "harness.commands.compare",
]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Run the device x world-size matrix of communicator tests (gloo, NCCL, xccl).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; HarnessError becomes its message and exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except HarnessError as error:
        # A message may quote a file the harness read (a summary, a cell's output): each line neutralised.
        first, *rest = str(error).splitlines() or [""]
        for line in [f"harness {args.command}: error: {first}", *rest]:
            print(log_line(line), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
