"""Follow a cell's progress.jsonl (written by the pytest plugin) and hand each event to a callback."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import TracebackType

from harness.model import ProgressCallback


class ProgressTail:
    """A thread that reads new complete lines of `path` as they appear; use as a context manager."""

    def __init__(self, path: Path, cell_id: str, callback: ProgressCallback, poll_s: float = 0.2) -> None:
        self._path = path
        self._cell_id = cell_id
        self._callback = callback
        self._poll_s = poll_s
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"progress-{cell_id}", daemon=True)

    def __enter__(self) -> ProgressTail:
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
        try:
            with self._path.open("rb") as stream:
                stream.seek(self._offset)
                chunk = stream.read()
        except OSError:
            return
        # Only complete lines: the writer may be half-way through one.
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self._callback(self._cell_id, event)
