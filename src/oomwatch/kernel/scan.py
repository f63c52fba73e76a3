"""Run the parser over whole logs: line by line, or fast over large files.

The fast path reads big blocks and jumps with `bytes.find` from one OOM keyword
to the next while no report is open, feeding the parser only the lines around
each keyword (the lines before it too, for fragments that grep or a filter left
without their header). While a report is open, every line is fed. Both paths
give the same records; a test holds them to that.
"""

from __future__ import annotations

import mmap
import re
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from datetime import datetime
from typing import BinaryIO

from oomwatch.kernel.lines import LineDecoder, plain_kmsg_parts
from oomwatch.kernel.parser import (
    FRAGMENT_GAP_LINES,
    OomParser,
    ParseStats,
    quiet_record,
)
from oomwatch.kernel.report import too_far
from oomwatch.model import OomKill

# Every line that can start or prove a kill while no report is open holds one of
# these: "invoked oom-killer", "oom-kill:", "oom_reaper", "memory.oom.group" and
# "systemd-oomd" hold "oom"; "Killed process N", "Kill process N", earlyoom's
# "sending SIGTERM to process N" and "killing process N" hold "process N";
# systemd-oomd's kill line without its tag (a paste) says "due to memory ..." or
# "due to swap used"; earlyoom's reason is "low memory!"; a kill line cut by a paste
# still says "out of memory". All of them hold an "o"
# followed by one of a few words: one regex with that literal first byte finds
# them in a single pass, as fast as grep finds one word.
NEEDLES = (re.compile(rb"o(?:om|cess \d| memory | swap used|w memory!|f memory)"),)
# Of the lines with a keyword, those that can matter while no report is open ...
RELEVANT = (
    b"invoked oom-killer",
    b"oom-kill:",
    b"Killed process",
    b"ill process ",
    b"oom_reaper",
    b"memory.oom.group",
    b"systemd-oomd",
    b"sending SIG",
    b"killing process",
    b"Killed /",
    b"Marked /",
    b" due to ",
    b"low memory!",
    b"of memory",  # "Out of memory: Killed" cut by a paste: the rest may follow
)
# ... and those that prove a kill, whose report may have begun before them.
PROVES_KILL = (
    b"Killed process",
    b"ill process ",
    b"oom-kill:",
    b"sending SIG",
    b"killing process",
    b" due to ",
)
Buffer = bytearray | mmap.mmap  # a block read, or a whole file mapped
BLOCK = 8 << 20
MAX_LINE = 16 << 20


class LogScanner:
    """Decoder and parser together: raw lines in, kills out, with counts of what was skipped."""

    def __init__(self, *, reference: datetime | None = None) -> None:
        self.decoder = LineDecoder(reference=reference)
        self.parser = OomParser()
        self.stopped_at: int | None = None  # where `scan_stream(stop_at=...)` stopped
        self._held: deque[bytes] = deque(maxlen=FRAGMENT_GAP_LINES)  # skipped by `feed_live`
        self._stop_at: int | None = None

    @property
    def stats(self) -> ParseStats:
        """The parser's counters, with the decoder's malformed journal records added."""
        return self.parser.stats

    def feed(self, raw: bytes | str, lineno: int = 0, offset: int | None = None) -> list[OomKill]:
        """One raw line in, the kills it completes out."""
        out: list[OomKill] = []
        for line in self.decoder.decode(raw, lineno, offset):
            out.extend(self.parser.feed(line))
        if self.decoder.malformed:
            self.parser.stats.malformed += self.decoder.malformed
            self.decoder.malformed = 0
        return out

    def feed_live(self, lines: Iterable[bytes]) -> list[OomKill]:
        """A follower's lines in, kills out: the fast path's keyword skip, line by line.

        While no report is open, a line without a keyword is only held (the last
        FRAGMENT_GAP_LINES of them); a line that proves a kill gets them fed first,
        for a fragment whose header came earlier. So a flood of other records costs
        one regex search each, and the kills are those of feeding every line.
        """
        out: list[OomKill] = []
        held = self._held
        needle = NEEDLES[0].search
        parser = self.parser
        decoder = self.decoder
        passed: bytes | None = None  # the last record passed over
        run = 0  # records passed over since the parser last took one, not yet counted
        gate: tuple[float | None, int] | None = None  # `pass_gate()` for this run
        for raw in lines:
            inside = parser.needs_context
            if not inside:
                if needle(raw) is None or not any(m in raw for m in RELEVANT):
                    held.append(raw)
                    continue
                if held and any(m in raw for m in PROVES_KILL):
                    for h in held:
                        out.extend(self.feed(h))
                held.clear()
            elif not decoder.continuing and (uptime := quiet_record(raw)) is not None:
                # the parser's state holds while it takes no line: one gate for the run
                gate = parser.pass_gate() if run == 0 else gate
                if gate is not None and run < gate[1]:
                    last = gate[0]
                    if last is None or not too_far(uptime, last):
                        run += 1
                        passed = raw  # most records of a report: counted, no line made
                        continue
            if run:
                parser.passed(run)
                run = 0
            parts = None if decoder.continuing else plain_kmsg_parts(raw)
            if parts is None:  # another format, or text to clean: `feed`'s general steps
                if passed is not None:  # what a stampless line after it inherits
                    self._inherit(passed)
                    passed = None
                out.extend(self.feed(raw))
            else:  # straight to the parser, without `feed`'s steps
                passed = None
                out.extend(parser.feed(decoder.plain_line(parts)))
        if run:
            parser.passed(run)
        if passed is not None:
            self._inherit(passed)
        return out

    def _inherit(self, raw: bytes) -> None:
        """Make a record passed over the one a stampless line after it inherits from."""
        parts = plain_kmsg_parts(raw)
        if parts is not None:
            self.decoder.plain_line(parts)

    def close(self) -> list[OomKill]:
        """Flush held lines at the end of the input."""
        out: list[OomKill] = []
        for line in self.decoder.flush():
            out.extend(self.parser.feed(line))
        out.extend(self.parser.close())
        return out

    def scan_lines(self, lines: Iterable[bytes | str]) -> Iterator[OomKill]:
        """Every line through the parser, in order."""
        for lineno, raw in enumerate(lines, start=1):
            yield from self.feed(raw, lineno)
        yield from self.close()

    def scan_stream(
        self,
        stream: BinaryIO,
        block: int = BLOCK,
        *,
        base: int = 0,
        stop_at: int | None = None,
    ) -> Iterator[OomKill]:
        """Scan a binary stream fast; the records are those of `scan_lines`.

        Lines are located by byte offset here (counting lines would cost a pass
        over the whole input), so `KernelLine.lineno` is 0 and `offset` is set;
        `base` is the stream's first offset. With `stop_at`, the scan ends at the
        first line at or after that offset where no report is open (`stopped_at`).
        """
        self._stop_at = stop_at
        buf = bytearray(block)
        have = 0  # bytes in buf
        dropping = False  # inside a line too long to be a log line
        while True:
            if have == len(buf):
                if len(buf) < MAX_LINE:
                    buf.extend(bytes(len(buf)))
                else:  # no log line is this long: count it and skip to its end
                    self.parser.stats.malformed += 1
                    base += have
                    have, dropping = 0, True
            with memoryview(buf) as view:
                n = stream.readinto(view[have:])  # type: ignore[attr-defined]
            if not n:
                break
            have += n
            if dropping:
                nl = buf.find(b"\n", 0, have)
                drop = have if nl < 0 else nl + 1
                buf[: have - drop] = buf[drop:have]
                base += drop
                have -= drop
                dropping = nl < 0
            cut = buf.rfind(b"\n", 0, have) + 1
            if cut == 0:
                continue
            fed_end = yield from self._scan_block(buf, cut, base)
            if self.stopped_at is not None:
                yield from self.close()
                return
            # the unfed tail may be a fragment's beginning for a kill in the next block
            keep = _start_of_last_lines(buf, fed_end, cut, FRAGMENT_GAP_LINES)
            buf[: have - keep] = buf[keep:have]
            base += keep
            have -= keep
        offset = base
        for raw in bytes(buf[:have]).split(b"\n"):
            yield from self.feed(raw, offset=offset)
            offset += len(raw) + 1
        yield from self.close()

    def scan_mapped(
        self, mm: mmap.mmap | None, start: int = 0, *, stop_at: int | None = None
    ) -> Iterator[OomKill]:
        """`scan_stream` over a memory-mapped file from `start` (None: an empty file).

        What the fast path skips is never copied out of the page cache.
        """
        self._stop_at = stop_at
        if mm is None:
            yield from self.close()
            return
        end = mm.rfind(b"\n", start) + 1
        if end > start:
            yield from self._scan_block(mm, end, 0, start=start)
            if self.stopped_at is not None:
                yield from self.close()
                return
        if len(mm) > max(end, start):
            yield from self.feed(mm[max(end, start) :], offset=max(end, start))
        yield from self.close()

    def _scan_block(
        self, buf: Buffer, end: int, base: int, *, start: int = 0
    ) -> Generator[OomKill, None, int]:
        """Scan `buf[start:end]` (whole lines), feeding lines near keywords and in open reports.

        Returns (as the generator's value) the offset after the last line fed.
        """
        pos = start  # everything before pos has been fed or skipped
        fed_end = start
        finds = [_find(n, buf, start, end) for n in NEEDLES]
        while pos < end:
            if not self.parser.needs_context:
                hits = [f for f in finds if f >= 0]
                after = base + (min(hits) if hits else end)
                if self._stop_at is not None and after >= self._stop_at:
                    # the rest is the next scanner's, which starts at stop_at
                    self.stopped_at = max(base + pos, self._stop_at)
                    return fed_end
                if not hits:
                    return fed_end
                line_start = buf.rfind(b"\n", 0, min(hits)) + 1
                line_end = buf.find(b"\n", line_start, end)
                line = buf[line_start:line_end]
                if not any(m in line for m in RELEVANT):
                    # "zoom", "process 42 started": a keyword, but no OOM line
                    pos = line_end + 1
                    finds = [
                        _find(n, buf, pos, end) if 0 <= f < pos else f
                        for n, f in zip(NEEDLES, finds, strict=True)
                    ]
                    continue
                if _FIELD.match(line):
                    # a journal field (`-o export`, `-o verbose`): its record's stamps
                    # and transport come in the lines before it
                    line_start = _record_start(buf, fed_end, line_start)
                if any(m in line for m in PROVES_KILL):
                    # look back for a fragment's earlier lines, never before what was fed
                    line_start = _start_of_last_lines(buf, fed_end, line_start, FRAGMENT_GAP_LINES)
                if line_start > fed_end:
                    self._prime(buf, fed_end, line_start)
                pos = line_start
            nl = buf.find(b"\n", pos, end)
            nl = end - 1 if nl < 0 else nl
            yield from self.feed(bytes(buf[pos:nl]), offset=base + pos)
            pos = fed_end = nl + 1
            finds = [
                _find(n, buf, pos, end) if 0 <= f < pos else f
                for n, f in zip(NEEDLES, finds, strict=True)
            ]
        return fed_end

    def _prime(self, buf: Buffer, lo: int, hi: int) -> None:
        """Give the decoder the last stamped line of the skipped `buf[lo:hi]`, as if read.

        A stampless line takes its host and clocks from the last stamped line
        before it; the line path has read that line, so the fast path reads it too.
        """
        end = hi - 1
        for _ in range(FRAGMENT_GAP_LINES):
            if end <= lo:
                return
            start = max(buf.rfind(b"\n", lo, end) + 1, lo)
            raw = bytes(buf[start:end])
            if any(ln.fmt != "bare" for ln in LineDecoder().decode(raw)):
                self.decoder.prime(raw)
                return
            end = start - 1


_FIELD = re.compile(rb"\s*[A-Z_][A-Z0-9_]{1,40}=")


def _record_start(buf: Buffer, lo: int, start: int) -> int:
    """The first line of the journal record whose field line starts at `start`."""
    for _ in range(200):
        if start <= lo:
            return lo
        nl = buf.rfind(b"\n", lo, start - 1)
        prev = nl + 1 if nl >= 0 else lo
        line = buf[prev : start - 1]
        if not line.strip():
            return start  # the blank line that ends the record before
        if not line[:1].isspace() and not _FIELD.match(line):
            return prev  # `-o verbose`: the record's own first line
        start = prev
    return start


def _find(pattern: re.Pattern[bytes], buf: Buffer, pos: int, end: int) -> int:
    m = pattern.search(buf, pos, end)
    return m.start() if m else -1


def _start_of_last_lines(buf: Buffer, lo: int, hi: int, n: int) -> int:
    """Find where the last `n` whole lines of `buf[lo:hi]` begin (`hi` starts a line)."""
    start = hi
    for _ in range(n):
        if start <= lo:
            return lo
        start = buf.rfind(b"\n", lo, start - 1) + 1
        if start == 0:
            return lo
    return max(start, lo)
