"""Names of the files in a results directory, and the only ways the harness reads and writes them.

Layout of one cell's directory (`OUT/<cell id>/`), all written by the harness itself:

    cell.json         the cell as planned (written before it starts)
    log.txt           the cell's output, head and tail kept when it is larger than LOG_LIMIT
    junit.xml         pytest's report      } copied out of work/ after the cell ends, each checked to
    fingerprint.json  the environment      } be a regular file no larger than its limit
    progress.jsonl    the plugin's events  }
    result.json       the completion record: the cell's CellResult, written last

`work/` is where the cell runner writes (a container sees only it, at /results); it is removed once its
files are copied. A cell directory without `result.json` did not finish: `incomplete`, whatever else it holds.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

CELL_JSON = "cell.json"
JUNIT_XML = "junit.xml"
LOG_TXT = "log.txt"
FINGERPRINT_JSON = "fingerprint.json"
PROGRESS_JSONL = "progress.jsonl"
RESULT_JSON = "result.json"
WORK_DIR = "work"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"

MIB = 1 << 20
# What the harness copies out of a cell's work directory, and the most of each it will read.
HARVESTED_FILES = {JUNIT_XML: 64 * MIB, FINGERPRINT_JSON: 1 * MIB, PROGRESS_JSONL: 16 * MIB}
# Any other results file the harness reads (summary.json, result.json, cell.json of a downloaded artifact).
READ_LIMIT = 64 * MIB
# Deeper JSON is not a document the harness wrote (its own nest five levels at most); Python's parser and
# everything that walks the result recursively would fail on it.
MAX_JSON_DEPTH = 64


class UnsafeResultFile(Exception):
    """A results file that is a link, not a regular file, or too large: the cell tampered with its results."""


def read_regular(path: Path, limit: int = READ_LIMIT, *, tail: bool = False) -> bytes:
    """The bytes of `path`, refusing links and non-regular files; over `limit` it raises, or keeps the tail.

    FileNotFoundError passes through: a missing file is not an attack, callers decide what it means.
    """
    with _open_checked(path) as (stream, size):
        if size > limit:
            if not tail:
                raise UnsafeResultFile(f"{path.name} is {size} bytes, over the {limit}-byte limit")
            stream.seek(size - limit)
        return stream.read(limit)


@contextmanager
def _open_checked(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """`path` open for reading, with its size: never through a link at its name, only a regular file."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeResultFile(
                f"{path.name} is a symbolic link; results are never read through links"
            ) from None
        raise
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeResultFile(f"{path.name} is not a regular file")
        yield stream, info.st_size


def read_chunks(path: Path, limit: int, chunk: int = 1 * MIB) -> Iterator[bytes]:
    """The bytes of `path` as `read_regular` checks them, in chunks: for parsers that stream (junit.xml).

    Over `limit` it raises UnsafeResultFile, also when the file grows past it while being read.
    """
    with _open_checked(path) as (stream, size):
        if size > limit:
            raise UnsafeResultFile(f"{path.name} is {size} bytes, over the {limit}-byte limit")
        left = limit
        while data := stream.read(min(chunk, left + 1)):
            if len(data) > left:
                raise UnsafeResultFile(f"{path.name} grew over the {limit}-byte limit while being read")
            left -= len(data)
            yield data


def read_json(path: Path, limit: int = READ_LIMIT) -> Any:
    """A JSON document read with `read_regular`; ValueError when it does not parse or nests too deep."""
    text = read_regular(path, limit).decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth(document) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def json_depth(document: Any) -> int:
    """How deep arrays and objects nest in `document`, counted without recursion (it may be hostile);
    counting stops once past MAX_JSON_DEPTH."""
    deepest = 0
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def directory_below(base: Path, relative: str) -> Path:
    """`base/relative` for a `relative` path read from a results file (summary.json's results_dir, a pending
    cell id). UnsafeResultFile unless it is relative and free of `..`, and every part of it that exists is a
    real directory, not a link. A part that does not exist ends the check: reads below it find nothing."""
    parts = PurePosixPath(relative).parts
    if not parts or "\0" in relative or parts[0] == "/" or ".." in parts:
        raise UnsafeResultFile(
            f"{relative!r} is not a path below the results directory (absolute, empty or with ..)"
        )
    path = base
    for part in parts:
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return base.joinpath(*parts)
        if stat.S_ISLNK(info.st_mode):
            raise UnsafeResultFile(f"{path} is a symbolic link; results are never read through links")
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeResultFile(f"{path} is not a directory")
    return path


def write_new(path: Path, data: bytes) -> None:
    """Write `path` atomically; a link or anything else already at `path` is replaced, never followed."""
    with replacing(path) as stream:
        stream.write(data)


@contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A new file to write, put at `path` atomically when the block ends without an exception (see
    `write_new`); for documents written as a stream (the merged junit.xml)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w+b") as stream:
            yield stream
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, document: Any) -> None:
    """`document` as indented JSON, atomically (see `write_new`)."""
    write_new(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))


def remove_tree(path: Path) -> None:
    """Remove `path` whatever it is, without following a link anywhere inside or at it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        # rmtree unlinks links rather than following them (fd-based on Linux: immune to swaps mid-walk);
        # make directories a test left unwritable removable first.
        def make_writable(function: Any, failed: str, _: Any) -> None:
            os.chmod(os.path.dirname(failed) or ".", 0o700)
            function(failed)

        shutil.rmtree(path, onerror=make_writable)
    else:
        path.unlink()


def fresh_cell_dir(cell_dir: Path) -> Path:
    """An empty cell directory with an empty work/ inside: whatever an earlier run left there is removed."""
    remove_tree(cell_dir)
    cell_dir.mkdir(parents=True)
    (cell_dir / WORK_DIR).mkdir()
    return cell_dir


def harvest_work_dir(cell_dir: Path) -> list[str]:
    """Copy the expected files out of `cell_dir/work` (checked), remove work/; returns what was refused."""
    refused = []
    work = cell_dir / WORK_DIR
    for name, limit in HARVESTED_FILES.items():
        try:
            data = read_regular(work / name, limit, tail=name == PROGRESS_JSONL)
        except FileNotFoundError:
            continue
        except UnsafeResultFile as error:
            refused.append(str(error))
            continue
        except OSError as error:
            refused.append(f"{name} could not be read: {error.strerror}")
            continue
        write_new(cell_dir / name, data)
    try:
        remove_tree(work)
    except OSError as error:
        refused.append(f"{WORK_DIR}/ could not be removed: {error}")
    return refused
