"""Follow /dev/kmsg: one record per read, sequence numbers kept, overruns counted exactly."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from itertools import repeat
from pathlib import Path

from oomwatch.sources import Batch

MAX_BATCH = 4096  # records per batch: bounded memory, a kill never waits behind a flood


class KmsgFollower:
    """Reads /dev/kmsg without blocking the event loop, resuming after a saved cursor.

    The cursor is `<boot id>:<last sequence handled>`. Same boot: records up to
    that sequence are skipped and a jump past it is counted as lost (overwritten
    while the agent was down). New boot or no cursor: the whole buffer is read,
    unless `from_end` (then only new records).
    """

    name = "kmsg"

    def __init__(self, path: Path, boot_id: str, cursor: str | None, *, from_end: bool = False):
        self.path = path
        self.boot_id = boot_id
        self.last_seq: int | None = None
        saved_boot, _, saved_seq = (cursor or "").partition(":")
        self._resume = saved_boot == boot_id and saved_seq.isdigit()
        if self._resume:
            self.last_seq = int(saved_seq)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.drained = False  # the last read_available read all there was
        if from_end and not self._resume:
            self._skip_existing()

    def _skip_existing(self) -> None:
        """Read past what the buffer holds now, so the cursor knows the last sequence."""
        while True:
            batch = self.read_available()
            if not batch.lines and not batch.lost:
                return

    @property
    def cursor(self) -> str | None:
        """Where to resume: after the last record read."""
        return None if self.last_seq is None else f"{self.boot_id}:{self.last_seq}"

    def read_available(self) -> Batch:
        """Every record available now (up to MAX_BATCH), without blocking."""
        records = self._read_records()
        lost = 0
        if self.last_seq is not None:
            # resumed on the same boot: the records handled before the restart come first
            handled = 0
            for record in records:
                seq = _seq(record)
                if seq is None or seq > self.last_seq:
                    break
                handled += 1
            del records[:handled]
        last = _seq(records[-1]) if records else None
        if last is not None:
            if self.last_seq is not None:
                # the kernel numbers every record: those between that were not read were
                # overwritten (records come in order, so the last one's number says it)
                lost = max(last - self.last_seq - len(records), 0)
            self.last_seq = last
        # one record may hold several lines (a dictionary's); each ends with a newline
        lines = b"\n".join(map(bytes.rstrip, records, repeat(b"\n"))).split(b"\n")
        return Batch(lines if records else [], self.cursor, lost)

    def _read_records(self) -> list[bytes]:
        """One read per record, nothing else per record: the loop a kill's report is read in."""
        records: list[bytes] = []
        append, read, fd = records.append, os.read, self.fd
        while len(records) < MAX_BATCH:
            try:
                rec = read(fd, 16384)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EPIPE:
                    continue  # overwritten records: the sequence jump says how many
                raise
            if not rec:
                break
            append(rec)
        self.drained = len(records) < MAX_BATCH
        return records

    async def batches(self) -> AsyncIterator[Batch]:
        """Batches as records arrive; waits on the descriptor between them."""
        loop = asyncio.get_running_loop()
        while True:
            batch = self.read_available()
            if batch.lines or batch.lost:
                yield batch
                if not self.drained:
                    await asyncio.sleep(0)  # let delivery run between big batches
                    continue
                # all there was is read: wait for more (no read that finds nothing), so
                # that a kill's delivery, woken by this batch, runs without a step between
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.fd, _set, ready)
            try:
                await ready
            finally:
                loop.remove_reader(self.fd)

    def close(self) -> None:
        """Close the descriptor."""
        os.close(self.fd)


def _set(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _seq(record: bytes) -> int | None:
    """The sequence number of a record, `prio,seq,stamp,flags;text`."""
    a = record.find(b",")
    b = record.find(b",", a + 1, 40)
    digits = record[a + 1 : b] if 0 <= a < b else b""
    return int(digits) if digits.isdigit() else None
