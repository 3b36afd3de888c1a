"""Every path a command will write is checked before it does any work: a bad one is exit 2, at once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.common.errors import ConfigurationError


def _probe_writable(directory: Path, option: str, shown: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".harness-write-check-"):
            pass
    except OSError as error:
        raise ConfigurationError(
            f"{option} {shown}: cannot write in {directory} ({error.strerror}); pass a writable path"
        ) from None


def _make_directory(directory: Path, option: str, shown: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigurationError(
            f"{option} {shown}: {directory} exists and is not a directory; pass another path"
        ) from None
    except OSError as error:
        raise ConfigurationError(
            f"{option} {shown}: cannot create {directory} ({error.strerror}); pass a writable path"
        ) from None


def check_output_dir(path: Path, option: str) -> Path:
    """Create the directory `path` now and make sure files can be written in it; returns `path`."""
    _make_directory(path, option, path)
    _probe_writable(path, option, path)
    return path


def check_output_file(path: Path | None, option: str) -> Path | None:
    """Make sure the file `path` can be written (its directory is created); None passes through."""
    if path is None:
        return None
    if path.is_dir():
        raise ConfigurationError(f"{option} {path}: is a directory; pass a file path")
    _make_directory(path.parent, option, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigurationError(f"{option} {path}: the file is not writable; pass another path")
    _probe_writable(path.parent, option, path)
    return path
