"""What a record says ran: the harness's version and the git commit of the checkout that ran it."""

from __future__ import annotations

import importlib.metadata
import subprocess
from dataclasses import dataclass
from pathlib import Path

import harness

HARNESS_DISTRIBUTION = "comm-harness"
GIT_TIMEOUT_S = 30


def harness_version() -> str:
    """The version of the harness running (the checkout's when it is not installed)."""
    try:
        return importlib.metadata.version(HARNESS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return harness.__version__


@dataclass(frozen=True)
class Checkout:
    """The commit checked out in a directory; None outside a git work tree (or without git)."""

    commit: str | None
    dirty: bool = False  # tracked files differ from the commit: the code that ran is not exactly it


def checkout_of(directory: Path) -> Checkout:
    """HEAD of the git work tree holding `directory`, and whether its tracked files have changes."""
    try:
        head = _git(directory, "rev-parse", "--verify", "HEAD")
        changes = _git(directory, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return Checkout(None)
    if head.returncode != 0 or changes.returncode != 0:
        return Checkout(None)
    return Checkout(head.stdout.strip(), dirty=bool(changes.stdout.strip()))


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
