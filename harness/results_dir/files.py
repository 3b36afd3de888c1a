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
from pathlib import Path
from typing import Any

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


class UnsafeResultFile(Exception):
    """A results file that is a link, not a regular file, or too large: the cell tampered with its results."""


def read_regular(path: Path, limit: int = READ_LIMIT, *, tail: bool = False) -> bytes:
    """The bytes of `path`, refusing links and non-regular files; over `limit` it raises, or keeps the tail.

    FileNotFoundError passes through: a missing file is not an attack, callers decide what it means.
    """
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
        if info.st_size > limit:
            if not tail:
                raise UnsafeResultFile(f"{path.name} is {info.st_size} bytes, over the {limit}-byte limit")
            stream.seek(info.st_size - limit)
        return stream.read(limit)


def read_json(path: Path, limit: int = READ_LIMIT) -> Any:
    """A JSON document read with `read_regular`; ValueError when it does not parse."""
    return json.loads(read_regular(path, limit).decode("utf-8", errors="replace"))


def write_new(path: Path, data: bytes) -> None:
    """Write `path` atomically; a link or anything else already at `path` is replaced, never followed."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
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
