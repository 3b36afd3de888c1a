"""`harness doctor [--json]`: what this host can run (cores, GPUs, Docker, torch and its backends)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from harness.commands import make_console
from harness.host.probe import describe_host, probe_host


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `doctor` subcommand."""
    parser = subparsers.add_parser("doctor", help="print this host's capabilities")
    parser.add_argument("--json", action="store_true", help="print the probe as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Probe and print; always exit 0 (a missing capability is a finding, not an error)."""
    host = probe_host()
    if args.json:
        print(json.dumps(host.to_json(), indent=2))
        return 0
    table = Table(title="comm-harness doctor", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("finding")
    for what, finding in describe_host(host):
        table.add_row(what, finding)
    make_console().print(table)
    return 0
