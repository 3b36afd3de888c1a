"""`python -m harness.bench ...`: the bench without the rest of the harness CLI (same options, same exits)."""

from __future__ import annotations

import argparse
import sys

from harness.bench.command import DESCRIPTION, add_arguments, handle
from harness.common.errors import EXIT_INTERRUPTED, HarnessError


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn a HarnessError into its message and exit code."""
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return handle(args)
    except HarnessError as error:
        print(f"harness bench: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("harness bench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
