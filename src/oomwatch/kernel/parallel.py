"""Scan a large log file on two cores: the second half in a forked process.

The file is split at a line in a stretch of at least `QUIET` bytes on each side
that holds no OOM keyword, so no report can straddle the split unless its
context (a huge task table) runs longer than that. The first scanner goes on
past the split while a report is open and says where it stopped; the second
half's kills before that point are the first's, and are dropped. Kills come out
in file order. Where fork or a second core is missing, or the child fails, the
first scanner simply reads on: the records are the same.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from oomwatch.kernel.report import ParseStats
from oomwatch.kernel.scan import NEEDLES, LogScanner
from oomwatch.model import OomKill

PARALLEL_MIN = 64 << 20
QUIET = 1 << 20
_KEPT = 5


class FileScan:
    """The kills of one regular file, found on two cores when it is large."""

    def __init__(
        self,
        path: Path,
        *,
        reference: datetime | None = None,
        min_size: int = PARALLEL_MIN,
        quiet: int = QUIET,
    ) -> None:
        self.path = path
        self.reference = reference
        self.stats = ParseStats()
        self._min_size = min_size
        self._quiet = quiet

    def __iter__(self) -> Iterator[OomKill]:
        split = _split_point(self.path, self._min_size, self._quiet) if _two_cores() else None
        first = LogScanner(reference=self.reference)
        if split is None:
            with _mapped(self.path) as mm:
                yield from first.scan_mapped(mm)
            self.stats = first.stats
            return
        child = _fork_second_half(self.path, split, self.reference)
        with _mapped(self.path) as mm:
            mine = list(first.scan_mapped(mm, stop_at=split)) if child else []
            if not child:
                yield from first.scan_mapped(mm)
                self.stats = first.stats
                return
        yield from mine
        pid, fd = child
        second = _collect(pid, fd)
        end = first.stopped_at
        if second is None or end is None:  # the child failed: read on here
            rest = LogScanner(reference=self.reference)
            with _mapped(self.path) as mm:
                yield from rest.scan_mapped(mm, end or split)
            self.stats = _merged(first.stats, rest.stats)
            return
        kills, stats = second
        # the parser drops a record read twice (overlapping pastes) by its stamps
        seen = {_key(k) for k in mine[-256:] if k.seq is not None or k.uptime_s is not None}
        yielded = len(mine)
        for k in kills:
            if (k.offset is None or k.offset >= end) and _key(k) not in seen:
                yielded += 1
                yield k
        self.stats = _merged(first.stats, stats)
        self.stats.kills = yielded


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap | None]:
    """The file mapped read-only (None when it is empty: an empty file cannot be mapped)."""
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield None
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            mm.madvise(mmap.MADV_SEQUENTIAL)
            yield mm


def _two_cores() -> bool:
    return hasattr(os, "fork") and len(os.sched_getaffinity(0)) >= 2


def _split_point(path: Path, min_size: int, quiet: int) -> int | None:
    """A line start near the middle with no OOM keyword within `quiet` bytes of it."""
    size = path.stat().st_size
    if size < max(min_size, 4 * quiet):
        return None
    (needle,) = NEEDLES
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        at = size // 2
        while at + quiet < size:
            hit = needle.search(mm, at - quiet, at + quiet)
            if hit is None:
                nl = mm.find(b"\n", at)
                return nl + 1 if 0 <= nl < size - 1 else None
            at = hit.end() + quiet
    return None


def _fork_second_half(path: Path, split: int, reference: datetime | None) -> tuple[int, int] | None:
    """Start a child that scans from `split` to the end; its pid and the pipe to read."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid:
        os.close(w)
        return pid, r
    code = 1
    try:  # the child: never returns into the caller's code
        os.close(r)
        scanner = LogScanner(reference=reference)
        with _mapped(path) as mm:
            kills = list(scanner.scan_mapped(mm, split))
        with os.fdopen(w, "wb") as out:
            pickle.dump((kills, scanner.stats), out, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    finally:
        os._exit(code)


def _collect(pid: int, fd: int) -> tuple[list[OomKill], ParseStats] | None:
    with os.fdopen(fd, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        return None
    got: tuple[list[OomKill], ParseStats] = pickle.loads(data)  # noqa: S301 - our own child
    return got


def _key(k: OomKill) -> tuple[object, ...]:
    return (k.seq, k.uptime_s, k.time, k.host, k.victim.pid, k.victim.comm, k.message)


def _merged(a: ParseStats, b: ParseStats) -> ParseStats:
    return ParseStats(
        lines=a.lines + b.lines,
        kills=a.kills + b.kills,
        malformed=a.malformed + b.malformed,
        malformed_examples=(a.malformed_examples + b.malformed_examples)[:_KEPT],
        reports_without_kill=a.reports_without_kill + b.reports_without_kill,
        unread=a.unread + b.unread,
        unread_examples=(a.unread_examples + b.unread_examples)[:_KEPT],
    )
