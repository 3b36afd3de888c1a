"""The console every command prints to."""

from __future__ import annotations

from rich.console import Console


def make_console() -> Console:
    """stdout; wide enough in CI logs that the result table is not wrapped."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)
