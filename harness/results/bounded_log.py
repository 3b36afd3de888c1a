"""log.txt that cannot fill the disk: the head and tail of a cell's output are kept, the middle dropped."""

from __future__ import annotations

import collections
from pathlib import Path
from types import TracebackType

HEAD_BYTES = 4 << 20
TAIL_BYTES = 16 << 20


class BoundedLog:
    """A binary sink writing at most `head` bytes to `path`, then keeping the last `tail` bytes in memory.

    At close the kept tail follows a line saying how many bytes were dropped, so a test that prints
    gigabytes leaves a log of at most head + tail bytes whose end is what went wrong.
    """

    def __init__(self, path: Path, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self._stream = path.open("wb")
        self._head_left = head
        self._tail_limit = tail
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self._dropped = 0

    def write(self, data: bytes) -> int:
        """Write `data` (the head), or keep it for the tail once the head is full."""
        if self._head_left > 0:
            part = data[: self._head_left]
            self._stream.write(part)
            self._head_left -= len(part)
            data = data[len(part) :]
        if data:
            self._tail.append(data)
            self._tail_size += len(data)
            while self._tail_size - len(self._tail[0]) >= self._tail_limit:
                self._dropped += len(self._tail[0])
                self._tail_size -= len(self._tail.popleft())
        return len(data)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        """Write the tail after the head; a no-op the second time."""
        if self._stream.closed:
            return
        tail = b"".join(self._tail)
        excess = max(0, len(tail) - self._tail_limit)
        if self._dropped or excess:
            self._stream.write(
                f"\n[harness] {self._dropped + excess} bytes of output dropped here "
                f"(log.txt keeps the first and last bytes)\n".encode()
            )
        self._stream.write(tail[excess:])
        self._stream.close()

    def __enter__(self) -> BoundedLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
