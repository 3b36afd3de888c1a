"""Follow a cell's progress.jsonl (written by the pytest plugin) and hand each event, typed, to a callback.

The one reader that follows the file; each line is decoded by harness/common/progress_events.py, which skips
what is not one of the plugin's events (the file is the cell's, written by untrusted test code).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from types import TracebackType

from harness.common.progress_events import ProgressCallback, parse_event_line

CHUNK_BYTES = 1 << 20


class ProgressReader:
    """A thread that reads new complete lines of `path` as they appear; use as a context manager."""

    def __init__(self, path: Path, cell_id: str, callback: ProgressCallback, poll_s: float = 0.2) -> None:
        self._path = path
        self._cell_id = cell_id
        self._callback = callback
        self._poll_s = poll_s
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"progress-{cell_id}", daemon=True)

    def __enter__(self) -> ProgressReader:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._read_new_lines()

    def _follow(self) -> None:
        while not self._stop.wait(self._poll_s):
            self._read_new_lines()

    def _read_new_lines(self) -> None:
        # The file is the cell's to write: never follow a link there, never read more than a chunk a poll.
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            stream.seek(self._offset)
            chunk = stream.read(CHUNK_BYTES)
        # Only complete lines: the writer may be half-way through one.
        end = chunk.rfind(b"\n") + 1
        if end == 0 and len(chunk) == CHUNK_BYTES:
            end = len(chunk)  # a line longer than a chunk is no event: skip it rather than stall
        complete = chunk[:end]
        self._offset += len(complete)
        for line in complete.splitlines():
            event = parse_event_line(line)
            if event is not None:
                self._callback(self._cell_id, event)
