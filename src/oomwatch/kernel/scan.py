"""Run the parser over whole logs: line by line, or fast over large files.

The fast path reads big blocks and jumps with `bytes.find` from one OOM keyword
to the next while no report is open, feeding the parser only the lines around
each keyword (the lines before it too, for fragments that grep or a filter left
without their header). While a report is open, every line is fed. Both paths
give the same records; a test holds them to that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import BinaryIO

from oomwatch.kernel.lines import LineDecoder
from oomwatch.kernel.parser import FRAGMENT_GAP_LINES, OomParser, ParseStats
from oomwatch.model import OomKill

# Every line that can start or prove a kill while no report is open holds one of
# these: "invoked oom-killer", "oom-kill:", "memory.oom.group", "systemd-oomd" hold
# "oom"; "Killed process", "Kill process", earlyoom's "sending SIGTERM to process"
# and "killing process" hold " process ".
NEEDLES = (b"oom", b" process ")
BLOCK = 8 << 20


class LogScanner:
    """Decoder and parser together: raw lines in, kills out, with counts of what was skipped."""

    def __init__(self, *, reference: datetime | None = None) -> None:
        self.decoder = LineDecoder(reference=reference)
        self.parser = OomParser()

    @property
    def stats(self) -> ParseStats:
        """The parser's counters, with the decoder's malformed journal records added."""
        return self.parser.stats

    def feed(self, raw: bytes | str, lineno: int = 0) -> list[OomKill]:
        """One raw line in, the kills it completes out."""
        out: list[OomKill] = []
        for line in self.decoder.decode(raw, lineno):
            out.extend(self.parser.feed(line))
        if self.decoder.malformed:
            self.parser.stats.malformed += self.decoder.malformed
            self.decoder.malformed = 0
        return out

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

    def scan_stream(self, stream: BinaryIO, block: int = BLOCK) -> Iterator[OomKill]:
        """The fast path over a binary stream: same records as `scan_lines`, far fewer lines read."""
        carry = b""
        lineno_base = 0  # lines before the start of `buf`
        while True:
            data = stream.read(block)
            if not data:
                break
            buf = carry + data
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                if len(buf) > 64 * block:  # a single huge line: no log has one, keep memory bounded
                    buf = buf[-block:]
                carry = buf
                continue
            yield from self._scan_block(buf, cut, lineno_base)
            lineno_base += buf.count(b"\n", 0, cut)
            carry = buf[cut:]
        if carry:
            yield from self.feed(carry, lineno_base + 1)
        yield from self.close()

    def _scan_block(self, buf: bytes, end: int, lineno_base: int) -> Iterator[OomKill]:
        """Scan `buf[:end]` (whole lines); feed lines near keywords and inside open reports."""
        pos = 0  # everything before pos has been fed or skipped
        counted_pos, counted_lines = 0, lineno_base
        finds = [buf.find(n, 0, end) for n in NEEDLES]
        while pos < end:
            if not self.parser.needs_context:
                hits = [f for f in finds if f >= 0]
                if not hits:
                    return
                hit = min(hits)
                line_start = buf.rfind(b"\n", 0, hit) + 1
                if line_start < pos:  # the keyword is in a line already fed
                    finds = [buf.find(n, pos, end) if f >= 0 and f < pos else f
                             for n, f in zip(NEEDLES, finds, strict=True)]
                    continue
                # look back for a fragment's earlier lines, never before what was fed
                back = line_start
                for _ in range(FRAGMENT_GAP_LINES):
                    if back <= pos:
                        break
                    back = buf.rfind(b"\n", pos, back - 1) + 1
                pos = max(back, pos)
            nl = buf.find(b"\n", pos, end)
            nl = end - 1 if nl < 0 else nl
            counted_lines += buf.count(b"\n", counted_pos, pos)
            counted_pos = pos
            yield from self.feed(buf[pos:nl], counted_lines + 1)
            pos = nl + 1
            finds = [buf.find(n, pos, end) if 0 <= f < pos else f
                     for n, f in zip(NEEDLES, finds, strict=True)]
