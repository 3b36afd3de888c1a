"""Qualification records: folders under qualification/ named in commands by their folder name."""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigurationError

RECORDS_DIR = Path("qualification")


def resolve_results(text: str, side: str) -> Path:
    """A results path as given, or a record's folder when `text` is a record's name under ./qualification/."""
    path = Path(text)
    if path.exists():
        return path
    record = RECORDS_DIR / text
    if len(path.parts) == 1 and record.is_dir():
        return record
    raise ConfigurationError(
        f"{side} {text!r}: no such directory, nor a record {RECORDS_DIR / text}/; pass a `harness run --out` "
        "directory, a folder of CI artifacts, or a record's name"
    )
