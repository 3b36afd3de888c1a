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
Until work/ is gone the cell directory is 0700: whatever a test leaves there (a set-uid copy of a binary,
say) no other user of the host can reach; the copies the harness makes are new files, 0644.
"""

from __future__ import annotations

import errno
import json
import os
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
# pytest's cache of the cell's failed tests (`--lf`, `--ff`), carried from one run of the cell to the next.
LASTFAILED_JSON = "lastfailed.json"
PYTEST_CACHE_DIR = "pytest-cache"
RESULT_JSON = "result.json"
WORK_DIR = "work"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"

MIB = 1 << 20
# What the harness copies out of a cell's work directory, and the most of each it will read.
HARVESTED_FILES = {
    JUNIT_XML: 64 * MIB,
    FINGERPRINT_JSON: 1 * MIB,
    PROGRESS_JSONL: 16 * MIB,
    LASTFAILED_JSON: 4 * MIB,
}
# Any other results file the harness reads (summary.json, result.json, cell.json of a downloaded artifact).
READ_LIMIT = 64 * MIB
# Deeper JSON is not a document the harness wrote (its own nest five levels at most); Python's parser and
# everything that walks the result recursively would fail on it.
MAX_JSON_DEPTH = 64
# How remove_tree opens a directory of a tree it removes: never through a link.
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OWNER_ONLY = 0o700
# A cell directory once its work/ is gone: only the harness's own files are left, for anyone to read.
_CELL_DIR_MODE = 0o755


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
    """Remove `path` whatever it is: never through a link, at any depth, whatever modes a test left.

    Iterative, and every name is opened relative to its parent's descriptor, so neither a chain deeper
    than the recursion limit nor paths longer than PATH_MAX stop it; it holds two descriptors at a time.
    A directory inside the tree that it cannot read, search or write is made 0700 first (the harness owns
    what its cells write, or is root); nothing outside the tree is changed.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        path.unlink()
        return
    parent = os.open(path.parent, _DIRECTORY_FLAGS & ~os.O_NOFOLLOW)
    try:
        _remove_directory(parent, path.name)
    finally:
        os.close(parent)


def _remove_directory(top: int, name: str) -> None:
    """Remove directory `name` of the directory open as `top` (which stays open), depth first."""
    current = _open_directory(top, name, fix_parent=False)
    # Per level: the directory's name in its parent and the subdirectories still to remove; files go at once.
    stack = [(name, _remove_files(current))]
    try:
        while stack:
            directory, pending = stack[-1]
            if pending:
                child = pending.pop()
                try:
                    inner = _open_directory(current, child)
                except FileNotFoundError:
                    continue
                except NotADirectoryError:
                    _retry_writable(current, os.unlink, child)  # not a directory (any more): a file to remove
                    continue
                os.close(current)
                current = inner
                stack.append((child, _remove_files(current)))
                continue
            stack.pop()
            parent = _open_parent(current) if stack else top
            emptied = os.fstat(current)
            os.close(current)
            current = -1
            there = os.stat(directory, dir_fd=parent, follow_symlinks=False)
            if (there.st_dev, there.st_ino) != (emptied.st_dev, emptied.st_ino):
                raise OSError(errno.ESTALE, f"{directory} was moved while the tree was being removed")
            if stack:
                _retry_writable(parent, os.rmdir, directory)
                current = parent
            else:
                os.rmdir(directory, dir_fd=parent)  # `top` is not the tree's to change
    finally:
        if current not in (-1, top):
            os.close(current)


def _remove_files(directory: int) -> list[str]:
    """Unlink every entry of the open `directory` that is not a directory; the names of those that are."""
    subdirectories = []
    with os.scandir(directory) as entries:
        names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_directory in names:
        if is_directory:
            subdirectories.append(name)
        else:
            _retry_writable(directory, os.unlink, name)
    return subdirectories


def _retry_writable(directory: int, operation: Any, name: str) -> None:
    """`operation(name, dir_fd=directory)`, once more after making `directory` 0700 if it was refused."""
    try:
        operation(name, dir_fd=directory)
    except PermissionError:
        os.fchmod(directory, _OWNER_ONLY)
        operation(name, dir_fd=directory)


def _open_parent(directory: int) -> int:
    """The open `directory`'s parent ("..": a directory, never a link), made searchable when it was not."""
    try:
        return os.open("..", _DIRECTORY_FLAGS, dir_fd=directory)
    except PermissionError:
        os.fchmod(directory, _OWNER_ONLY)
        return os.open("..", _DIRECTORY_FLAGS, dir_fd=directory)


def _open_directory(parent: int, name: str, *, fix_parent: bool = True) -> int:
    """A descriptor of directory `name` in `parent`, never through a link; modes a test took away restored
    (`parent`'s too when `fix_parent`).

    NotADirectoryError when `name` is not a directory (a link included).
    """
    try:
        return _open_no_follow(parent, name)
    except PermissionError:
        if fix_parent:
            os.fchmod(parent, _OWNER_ONLY)  # it was not searchable
    try:
        return _open_no_follow(parent, name)
    except PermissionError:
        # `name` itself is unreadable: chmod it through an O_PATH descriptor, which cannot be a link's target.
        handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            if not stat.S_ISDIR(os.fstat(handle).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", name) from None
            os.chmod(f"/proc/self/fd/{handle}", _OWNER_ONLY)
        finally:
            os.close(handle)
    return _open_no_follow(parent, name)


def _open_no_follow(parent: int, name: str) -> int:
    try:
        return os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
    except OSError as error:
        if error.errno == errno.ELOOP:  # a link: removed as one, never followed
            raise NotADirectoryError(errno.ENOTDIR, "a symbolic link", name) from None
        raise


def fresh_cell_dir(cell_dir: Path) -> Path:
    """An empty cell directory, closed to other users (0700), with an empty work/ inside: whatever an earlier
    run left there is removed."""
    remove_tree(cell_dir)
    cell_dir.parent.mkdir(parents=True, exist_ok=True)
    cell_dir.mkdir(mode=_OWNER_ONLY)
    (cell_dir / WORK_DIR).mkdir(mode=_OWNER_ONLY)
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
    else:
        os.chmod(cell_dir, _CELL_DIR_MODE)
    return refused
