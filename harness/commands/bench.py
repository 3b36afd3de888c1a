"""`harness bench`: bandwidth of every collective, dispatch+combine against the naive reference, floors."""

from __future__ import annotations

import argparse

from harness.bench.command import DESCRIPTION, add_arguments, handle


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    parser = subparsers.add_parser(
        "bench", help="measure collectives and all2all dispatch/combine", description=DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(handler=handle)
