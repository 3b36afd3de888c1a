"""Bench documents in a results directory: found by content, read as any results file (bounded, never
through links), and handed to the bench's judge (harness/bench/verdict.py).

`harness qualify` writes one per device and world size beside the cells' results; CI artifacts and record
folders hold them anywhere below the directories named, under any name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.bench.verdict import is_bench_document
from harness.results.files import UnsafeResultFile, read_json

# Bench documents are found by content, not name; files this large are results of something else.
MAX_BENCH_DOCUMENT_BYTES = 64 << 20


def read_bench_document(path: Path) -> dict[str, Any] | None:
    """The bench document in `path`, or None when the file is some other JSON (or not JSON, or a link:
    documents found in downloaded artifacts are read as any results file, bounded and never through links).

    ConfigurationError when it is a bench document whose settings are not what `harness bench` writes.
    """
    try:
        data = read_json(path, MAX_BENCH_DOCUMENT_BYTES)
    except (OSError, ValueError, UnsafeResultFile):
        return None
    return data if is_bench_document(data, path) else None


def find_bench_documents(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every bench document under `directory`, in path order."""
    found = []
    for path in sorted(_json_files(directory)):
        document = read_bench_document(path)
        if document is not None:
            found.append((path, document))
    return found


def _json_files(directory: Path) -> Iterator[Path]:
    """The *.json files below `directory`, never through a link, walked without recursion (a downloaded
    artifact may nest thousands of directories)."""
    stack = [directory]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                        yield Path(entry.path)
        except OSError:
            continue
