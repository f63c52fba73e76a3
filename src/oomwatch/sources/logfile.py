"""Follow a kern.log-style file across rotation by rename, copytruncate and truncation."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from watchfiles import awatch

from oomwatch.sources import Batch

# at most this much is read into one batch: a file that grew by a gigabyte between two
# reads (or is read again from 0) is read in bounded batches, one after the other; a
# batch's kills are built and stored together, so this also bounds that working set
BATCH_BYTES = 256 << 10
TAIL = 64


class LogFileFollower:
    """Reads new lines of one file; the cursor is its inode and the offset read up to.

    Its directory is watched, for the file and its rotations only (a rotated file is
    replaced, not changed): a new inode at the path means rotation by rename (the old
    file is read to its end first); a size below the offset, or other bytes than were
    read just before the offset, mean truncation (copytruncate, perhaps written again
    since): read again from 0.
    """

    name = "file"

    def __init__(
        self, path: Path, cursor: str | None, *, from_end: bool = False, poll_s: float = 1.0
    ) -> None:
        self.path = path
        self.poll_s = poll_s
        self._fd: int | None = None
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""
        self._tail = b""  # the last bytes read: a file rewritten after truncation differs
        self._head = b""  # and the first
        self.more = False  # the last read stopped at BATCH_BYTES: more is there already
        saved = _load(cursor)
        self._want = saved
        self._from_end = from_end and saved is None

    @property
    def cursor(self) -> str | None:
        """Inode and offset of the last complete line handled."""
        if self._inode is None:
            return None
        return json.dumps({"inode": self._inode, "offset": self._offset - len(self._partial)})

    def read_available(self) -> Batch:
        """Every complete new line now, following rotation and truncation."""
        lines: list[bytes] = []
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None
        if self._fd is None:
            if st is None:
                return Batch([], self.cursor)
            self._open(st)
        elif st is not None and st.st_ino != self._inode:
            lines.extend(self._drain())  # the rotated file's last lines
            if self.more:
                return Batch(lines, self.cursor)  # the rotated file is read to its end first
            self._partial = b""
            os.close(self._fd)
            self._open(st, rotated=True)
        elif st is not None and self._truncated(st):
            self._offset = 0  # truncated in place (copytruncate), maybe written again since
            self._partial = b""
            self._tail = self._head = b""
        lines.extend(self._drain())
        return Batch(lines, self.cursor)

    async def batches(self) -> AsyncIterator[Batch]:
        """Batches when the directory changes, and every `poll_s` in case an event was missed."""
        for batch in self._available():
            yield batch
        name = self.path.name
        async for _ in awatch(
            self.path.parent,
            # the file and its rotations only: a tree watch of /var/log would wake on the
            # journal, pods' logs and the agent's own log (a loop), and walk symlinks
            watch_filter=lambda _change, path: os.path.basename(path).startswith(name),
            recursive=False,
            debounce=20,
            step=10,
            rust_timeout=int(self.poll_s * 1000),
            yield_on_timeout=True,
        ):
            for batch in self._available():
                yield batch

    def _available(self) -> Iterator[Batch]:
        """Every batch there is now: more than one when the file grew by over BATCH_BYTES."""
        while True:
            batch = self.read_available()
            if batch.lines:
                yield batch
            if not self.more:
                return

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self, st: os.stat_result, *, rotated: bool = False) -> None:
        self._fd = os.open(self.path, os.O_RDONLY)
        self._inode = st.st_ino
        self._partial = b""
        self._tail = self._head = b""
        want = self._want
        self._want = None
        if not rotated and want is not None and want["inode"] == st.st_ino:
            self._offset = min(int(want["offset"]), st.st_size)
        elif not rotated and self._from_end:
            self._offset = st.st_size
        else:
            self._offset = 0
        if self._offset:  # resuming mid-file: remember its head and the bytes before us
            self._head = os.pread(self._fd, TAIL, 0)
            n = min(TAIL, self._offset)
            self._tail = os.pread(self._fd, n, self._offset - n)

    def _truncated(self, st: os.stat_result) -> bool:
        if st.st_size < self._offset:
            return True
        if self._fd is None or not self._offset:
            return False
        # the first and the last bytes read must still be there (log lines begin with
        # their time stamps, so a rewritten file differs at its head)
        head = min(self._offset, TAIL)
        if os.pread(self._fd, head, 0) != self._head[:head]:
            return True
        n = len(self._tail)
        return bool(n) and os.pread(self._fd, n, self._offset - n) != self._tail

    def _drain(self) -> list[bytes]:
        lines: list[bytes] = []
        self.more = False
        if self._fd is None:
            return lines
        read = 0
        while True:
            if read >= BATCH_BYTES:
                self.more = True
                return lines
            chunk = os.pread(self._fd, BATCH_BYTES - read, self._offset)
            if not chunk:
                return lines
            read += len(chunk)
            if len(self._head) < TAIL:
                self._head = (self._head + chunk)[:TAIL]
            self._offset += len(chunk)
            self._tail = (self._tail + chunk)[-TAIL:]
            data = self._partial + chunk
            parts = data.split(b"\n")
            self._partial = parts.pop()
            lines.extend(parts)


def _load(cursor: str | None) -> dict[str, int] | None:
    if not cursor:
        return None
    try:
        value = json.loads(cursor)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("inode"), int):
        return value
    return None
