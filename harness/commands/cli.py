"""The `harness` command: one argparse subcommand per module under harness/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

import harness
from harness.common.errors import EXIT_INTERRUPTED, HarnessError
from harness.common.untrusted_text import log_line

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
    "harness.commands.conformance",
]

# The commands that hand arguments after `--` to every cell's pytest.
PYTEST_ARGS_COMMANDS = ("run",)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Run the device x world-size matrix of communicator tests (gloo, NCCL, xccl).",
        epilog="harness run MATRIX -- ARGS...: ARGS go to every cell's pytest (-k EXPR, -x, --lf, ...).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {harness.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; HarnessError becomes its message and exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # pytest's own arguments follow `--`, as with `tox -- ARGS` or `nox -- ARGS`: argparse never sees them.
    split = argv.index("--") if "--" in argv else len(argv)
    parser = build_parser()
    args = parser.parse_args(argv[:split])
    if split < len(argv) and args.command not in PYTEST_ARGS_COMMANDS:
        parser.error(f"{args.command} takes no arguments after `--` (`harness run MATRIX -- ARGS` does)")
    args.pytest_args = argv[split + 1 :]
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
