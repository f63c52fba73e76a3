"""`oomwatch parse` and `oomwatch diagnose`: kills in saved logs and on this machine."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

from oomwatch.cli.common import DURATION, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UNITS
from oomwatch.errors import InputError, UsageError
from oomwatch.kernel.parser import ParseStats
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill
from oomwatch.render.escape import terminal


def cmd_parse(args: argparse.Namespace) -> int:
    """`oomwatch parse`: every kill in the given logs, as text lines or JSON Lines."""
    files: list[str] = args.files or ["-"]
    failed = unread = False
    out = sys.stdout
    for name in files:
        try:
            with _open_input(name) as (stream, reference):
                scan = _scanner(name, stream, reference)
                for kill in scan:
                    if args.format == "json":
                        out.write(json.dumps(kill.to_dict(), ensure_ascii=False) + "\n")
                    else:
                        from oomwatch.render.report import one_line

                        out.write(one_line(kill) + "\n")
                out.flush()
                stats = scan.stats
                lines = _line_numbers(name, stats.offsets())
                unread |= _report_skipped(name, stats, sys.stderr, lines)
        except InputError as e:
            print(f"oomwatch: {e}", file=sys.stderr)
            failed = True
    out.flush()
    if failed:
        return EXIT_USAGE
    return EXIT_FAILURE if unread and args.strict else EXIT_OK


class _Scan(Protocol):
    @property
    def stats(self) -> ParseStats: ...

    def __iter__(self) -> Iterator[OomKill]: ...


class _StreamScan:
    """A stream (stdin, gzip) scanned in one pass."""

    def __init__(self, stream: BinaryIO, reference: datetime) -> None:
        self._scanner = LogScanner(reference=reference)
        self._stream = stream

    @property
    def stats(self) -> ParseStats:
        return self._scanner.stats

    def __iter__(self) -> Iterator[OomKill]:
        return self._scanner.scan_stream(self._stream)


def _scanner(name: str, stream: BinaryIO, reference: datetime) -> _Scan:
    """A plain regular file is scanned on two cores when large; anything else as a stream."""
    from oomwatch.kernel.parallel import FileScan

    plain = name != "-" and os.path.isfile(name) and not isinstance(stream, gzip.GzipFile)
    return FileScan(Path(name), reference=reference) if plain else _StreamScan(stream, reference)


@contextmanager
def _open_input(name: str) -> Iterator[tuple[BinaryIO, datetime]]:
    """A binary stream for FILE (gunzipped if needed) and the reference time for syslog years."""
    label = "standard input" if name == "-" else name
    try:
        if name == "-":
            yield _maybe_gzip(sys.stdin.buffer, label), datetime.now()
            return
        with open(name, "rb") as raw:
            mtime = datetime.fromtimestamp(os.fstat(raw.fileno()).st_mtime)
            yield _maybe_gzip(raw, label), mtime
    except BrokenPipeError:
        raise  # the reader of our output went away (`| head`): not a problem of the input
    except (OSError, EOFError, zlib.error) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise InputError(f"cannot read {label}: {reason}") from e


def _maybe_gzip(stream: BinaryIO, _label: str) -> BinaryIO:
    head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def _report_skipped(
    name: str, stats: ParseStats, err: TextIO, line_of: dict[int, int] | None = None
) -> bool:
    """Say on stderr what could not be read; True when a line told of a kill that gave nothing."""
    label = "standard input" if name == "-" else name
    if stats.unread:
        n = stats.unread
        err.write(
            f"oomwatch: {label}: {n} line{'s' if n != 1 else ''} tell{'' if n != 1 else 's'} "
            "of an OOM kill that gave no record; kills may be missing:\n"
        )
        for s in stats.unread_examples:
            err.write(f"  {s.where(line_of)} ({s.why}): {terminal(s.text)}\n")
        if n > len(stats.unread_examples):
            err.write(f"  ... and {n - len(stats.unread_examples)} more\n")
    if stats.malformed:
        err.write(
            f"oomwatch: {label}: skipped {stats.malformed} malformed line"
            f"{'s' if stats.malformed != 1 else ''}\n"
        )
        for s in stats.malformed_examples:
            err.write(f"  {s.where(line_of)}: {terminal(s.text)}\n")
    return stats.unread > 0


def _line_numbers(name: str, offsets: list[int]) -> dict[int, int]:
    """Line numbers of byte offsets in a regular file (the fast path counts no lines)."""
    if not offsets or name == "-" or not os.path.isfile(name):
        return {}
    out: dict[int, int] = {}
    lineno = 1
    pos = 0
    buf = bytearray(8 << 20)
    with open(name, "rb") as f:
        if f.peek(2)[:2] == b"\x1f\x8b":
            return {}
        for target in offsets:
            while pos < target:
                with memoryview(buf) as view:
                    n = f.readinto(view[: min(len(buf), target - pos)])
                if not n:
                    break
                lineno += buf.count(b"\n", 0, n)
                pos += n
            out[target] = lineno
    return out


def cmd_diagnose(args: argparse.Namespace) -> int:
    """`oomwatch diagnose`: read this machine's kernel log and explain every kill."""
    from rich.console import Console

    from oomwatch.render.report import print_report
    from oomwatch.sources.oneshot import Roots, read_local_log

    now = datetime.now(UTC)
    since = parse_since(args.since, now) if args.since else None
    log = read_local_log(args.source, since=since, roots=Roots.from_env(os.environ))
    if args.json:
        for kill in log.kills:
            sys.stdout.write(json.dumps(kill.to_dict(), ensure_ascii=False) + "\n")
    else:
        tty = sys.stdout.isatty()
        # piped or redirected: no hard wrap at 80 columns, no padding at line ends
        piped = None if tty else io.StringIO()
        console = Console(highlight=False, soft_wrap=not tty, file=piped)
        if not log.kills:
            found = _nothing_found(log.source, since, log.first_uptime_s, log.lines)
            if log.stats.unread:
                found = found.split(".")[0] + " that could be read (see below)."
            console.print(found)
        else:
            print_report(console, log.kills, source=log.source, local=True, now=now)
        for note in log.tried:
            console.print(f"(could not read {terminal(note)})", style="dim", markup=False)
        if piped is not None:
            sys.stdout.write("".join(ln.rstrip() + "\n" for ln in piped.getvalue().splitlines()))
    sys.stdout.flush()
    unread = _report_skipped(log.source, log.stats, sys.stderr)
    return EXIT_FAILURE if unread and args.strict else EXIT_OK


def _nothing_found(
    source: str, since: datetime | None, first_uptime: float | None, lines: int
) -> str:
    span = f" since {since.astimezone():%Y-%m-%d %H:%M}" if since else ""
    text = f"No OOM kills found in {source}{span} ({lines} lines read)."
    if first_uptime is not None and first_uptime > 1.0:
        text += (
            f" The log only goes back to {first_uptime:.0f} s after boot: the kernel's "
            "ring buffer has overwritten older messages, so earlier kills cannot be seen "
            "there (a persistent journal or kern.log keeps them)."
        )
    elif not since:
        text += " No process has been killed for lack of memory since the log begins."
    return text


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from now (`30m`, `2h`, `7d`) or a local date and time."""
    m = DURATION.fullmatch(text.strip())
    if m:
        return now - timedelta(seconds=int(m.group(1)) * UNITS[m.group(2).lower()])
    try:
        return datetime.fromisoformat(text.strip()).astimezone()
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a duration such as 30m, 2h or 7d, or a date such as "
            "2026-11-25 or '2026-11-25 10:00'"
        ) from None
