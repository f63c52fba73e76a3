"""Recognise each log line's format and split it into metadata and kernel message text.

Formats are detected per line, so a paste that mixes `dmesg` output with journal
lines still reads right: raw `/dev/kmsg` records, `dmesg` (`[  1.2]`, `-T`, `-x`,
`-r`, ISO), syslog / kern.log / messages, journalctl (short, short-iso,
short-precise, short-monotonic, json) and bare message text. Quote prefixes (`> `)
and indentation from pasted reports are removed. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta

from oomwatch.kernel.prefixes import PrefixLearner, clean, dmesg_stamps, strip_uptime
from oomwatch.kernel.records import FieldRecords, Meta, parse_journal_json
from oomwatch.kernel.timestamps import (
    from_epoch_us,
    month_number,
    parse_iso,
    parse_syslog_time,
)
from oomwatch.model import KernelLine, LineFormat

_KMSG = re.compile(r"(\d{1,4}),(\d{1,20}),(\d{1,20}),([^;,]*)[^;]*;(.*)", re.S)
# the same record's head, on the raw bytes a kmsg follower reads
_KMSG_HEAD = re.compile(rb"(\d{1,4}),(\d{1,20}),(\d{1,20}),([^;,]*)[^;]*;")
_KMSG_DICT = re.compile(r" [A-Z_]+=")
_KMSG_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
# A stamp this far after the reference is still this year (clocks and zones differ).
_SKEW = timedelta(days=1)
_UNIX = re.compile(r"(\d{9,11})\.(\d{1,9})\s+(.*)", re.S)
_PRIO = re.compile(r"<(\d{1,3})>")
_DMESG_X = re.compile(
    r"(kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|res[0-3]|local[0-7])\s*:"
    r"\s*(emerg|alert|crit|err|warn|notice|info|debug)\s*:\s?"
)
_LEVELS = {
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
_SYSLOG = re.compile(
    r"(?P<mon>[^\W\d_]{2,12}\.?|\d{1,2}(?:月|월))\s+(?P<day>\d{1,2})\s+"
    r"(?P<hms>\d{1,2}:\d{2}:\d{2}(?:\.\d{1,9})?)\s+(?:(?P<year>\d{4})\s+)?"
    r"(?:(?P<host>\S*[^\s:])\s+)?(?P<tag>[^\s:\[]+)(?:\[(?P<pid>\d+)\])?:\s?(?P<msg>.*)",
    re.S,
)
# journalctl -o short-full and -o with-unit: `Wed 2026-12-02 14:34:57 UTC host tag: msg`
_FULL = re.compile(
    r"[^\W\d_]{2,4}\.? (?P<stamp>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) "
    r"(?P<zone>[A-Za-z]{1,6}|[+-]\d{2}:?\d{2})? ?(?P<rest>.*)",
    re.S,
)
_ISO = re.compile(
    r"(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"\s+(?P<rest>.*)",
    re.S,
)
# `host tag[pid]: msg` after a leading stamp. The tag must be `kernel` or carry a
# pid: kernel messages such as `memory: usage ...` or `Hardware name: ...` would
# otherwise look like a host and a tag.
_HOST_TAG_PATTERN = (
    r"(?P<host>[\w.:-]+)\s+(?:(?P<kernel>kernel)|(?P<tag>[^\s:\[]+)(?:\[(?P<pid>\d+)\]){}):\s?"
    r"(?P<msg>.*)"
)
_HOST_TAG = re.compile(_HOST_TAG_PATTERN.format(""), re.S)
# where every line has a host and a tag (journalctl -o short-full), the pid is optional
_HOST_ANY_TAG = re.compile(_HOST_TAG_PATTERN.format("?"), re.S)


PlainRecord = tuple[str, int, int, float]  # text, level, sequence number, uptime (s)


def plain_kmsg_parts(raw: bytes) -> PlainRecord | None:
    """The text, level, sequence number and uptime of a plain kmsg record; None for another.

    Plain: the kernel's own record (facility 0), whole (no continuation flag), one
    line of printable ASCII without escapes. Most records of a report are plain, and
    they are what a live follower reads: the steps the general path takes for other
    formats (cleaning, unescaping, splitting) cannot change them.
    """
    head = _KMSG_HEAD.match(raw)
    if head is None:
        return None
    prio, seq, stamp, flags = head.groups()
    body = raw[head.end() :].strip()
    if flags != b"-" or not body.isascii():
        return None  # a continuation, or text the general path would unescape
    text = body.decode("ascii")
    level = int(prio)
    if level > 7 or not text or not text.isprintable() or "\\x" in text:
        # another facility's (a write to /dev/kmsg), nothing, or text the general
        # path would unescape or split
        return None
    return text, level, int(seq), int(stamp) / 1_000_000


class LineDecoder:
    """Turns raw log lines into `KernelLine`s, remembering what a bare line inherits.

    `reference` (for example the log file's modification time) gives the year of
    syslog stamps, which print none; a month after the reference's month is taken
    to be from the year before.
    """

    def __init__(self, *, reference: datetime | None = None) -> None:
        self._reference = reference
        self._last: Meta | KernelLine = Meta()  # what a stampless line inherits
        self._pending_cont: KernelLine | None = None
        self._offset: int | None = None
        self._learner = PrefixLearner()
        self._fields = FieldRecords()
        self.malformed = 0

    def decode(
        self, raw: bytes | str, lineno: int = 0, offset: int | None = None
    ) -> list[KernelLine]:
        """The logical lines in one raw line (a kmsg record may hold several)."""
        self._offset = offset
        if isinstance(raw, bytes):
            if (line := self._plain_kmsg(raw, lineno)) is not None:
                return [line]
            text = raw.decode("utf-8", "backslashreplace")
        else:
            text = raw
        text = text.rstrip("\r\n")
        if "\x00" in text:  # `dmesg --kmsg-file` input: records end with NUL, not newline
            return [ln for part in text.split("\x00") for ln in self.decode(part, lineno, offset)]
        if self._last.fmt == "kmsg" and _KMSG_DICT.match(text):
            return []  # a kmsg dictionary property (` SUBSYSTEM=...`), not message text
        text = clean(text).strip()
        if not text or text.strip("{}[], ") == "" or text == '"dmesg": [':
            return []  # nothing, or the punctuation of `dmesg --json`
        first = text[0]
        if first.isdigit():
            km = _KMSG.fullmatch(text)
            if km:
                return self._kmsg(km, lineno)
            im = _ISO.fullmatch(text)
            if im:
                return self._iso(im, lineno)
            um = _UNIX.fullmatch(text)
            if um and (line := self._unix(um, lineno)) is not None:
                return [line]
        elif first == "[":
            return self._bracketed(text, lineno)
        elif first == "{" and text.startswith('{"'):
            if (rec := parse_journal_json(text)) is None:
                self.malformed += 1
                return [self._emit(text, lineno, self._inherit("bare"))]
            return self._structured(rec, lineno)
        elif first == '"' or ((first.isupper() or first == "_") and "=" in text[:28]):
            got = (
                self._fields.dmesg_field(text) if first == '"' else self._fields.export_field(text)
            )
            if isinstance(got, tuple):
                return self._structured(got, lineno)
            if got:
                return []
        elif first == "<":
            pm = _PRIO.match(text)
            if pm:
                inner = self.decode(text[pm.end() :], lineno)
                prio = int(pm.group(1))
                return [_replace_prio(line, prio) for line in inner]
        if not first.isdigit() or "月" in text[:4] or "월" in text[:4]:
            if (fm := _FULL.fullmatch(text)) and (line := self._full(fm, lineno)) is not None:
                return [line]
            sm = _SYSLOG.match(text)
            if sm and month_number(sm.group("mon")) is not None:
                return self._syslog(sm, lineno)
            xm = _DMESG_X.match(text)
            if xm:
                inner = self.decode(text[xm.end() :], lineno)
                prio = _LEVELS[xm.group(2)] if xm.group(1) == "kern" else 8 + _LEVELS[xm.group(2)]
                return [_replace_prio(line, prio) for line in inner]
        return [self._unnamed(text, lineno)]

    def plain_line(self, parts: PlainRecord) -> KernelLine:
        """The line of a live record `plain_kmsg_parts` read, as `decode` gives it."""
        self._offset = None
        return self._plain_line(parts, 0)

    @property
    def continuing(self) -> bool:
        """Whether a record waits for its continuation (then no record is plain)."""
        return self._pending_cont is not None

    def _plain_kmsg(self, raw: bytes, lineno: int) -> KernelLine | None:
        """The one line `decode` gives for a plain kmsg record; None for any other line."""
        if self._pending_cont is not None:
            return None
        parts = plain_kmsg_parts(raw)
        return None if parts is None else self._plain_line(parts, lineno)

    def _plain_line(self, parts: PlainRecord, lineno: int) -> KernelLine:
        text, level, seq, uptime = parts
        line = self._last = KernelLine(
            text, "kmsg", lineno, uptime, None, None, "kernel", level, seq, None, self._offset
        )
        return line

    def prime(self, raw: bytes) -> None:
        """Read a skipped line only for what the next stampless line inherits from it."""
        pending = self._pending_cont
        self.decode(raw)
        self._pending_cont = pending

    def flush(self) -> list[KernelLine]:
        """Lines held back waiting for a continuation (kmsg `c` fragments)."""
        pending, self._pending_cont = self._pending_cont, None
        return [pending] if pending else []

    # -- formats ---------------------------------------------------------------

    def _kmsg(self, m: re.Match[str], lineno: int) -> list[KernelLine]:
        prio = int(m.group(1))
        flags = m.group(4)
        body = m.group(5)
        if "\\x" in body:
            body = _unescape_kmsg(body)
        # Facility 0 is the kernel's own; the kernel rewrites user-space writes to
        # /dev/kmsg to facility 1, so a forged "Killed process" line cannot pass.
        meta = Meta(
            fmt="kmsg",
            uptime_s=int(m.group(3)) / 1_000_000,
            origin="kernel" if prio < 8 else "kmsg-user",
            prio=prio & 7,
            seq=int(m.group(2)),
        )
        self._last = meta
        out: list[KernelLine] = []
        if "+" in flags and self._pending_cont is not None:
            prev = self._pending_cont
            self._pending_cont = None
            body = prev.text + body
        elif self._pending_cont is not None:
            out.extend(self.flush())
        lines = [self._emit(part.strip(), lineno, meta) for part in split_record(body)]
        lines = [line for line in lines if line.text]
        if "c" in flags and lines:
            self._pending_cont = lines.pop()
        out.extend(lines)
        return out

    def _bracketed(self, text: str, lineno: int) -> list[KernelLine]:
        found = dmesg_stamps(text, self._year_now())
        if found is None:
            return [self._unnamed(text, lineno)]
        rest, st = found
        ht = _HOST_TAG.match(rest) if st.uptime_s is not None else None
        if ht:  # journalctl -o short-monotonic
            origin = "kernel" if ht.group("kernel") else ht.group("tag")
            uptime = st.uptime_s if origin == "kernel" else None
            meta = Meta("journal", uptime, None, ht.group("host"), origin)
            self._last = meta
            return [self._emit(ht.group("msg").strip(), lineno, meta)]
        if st.relative and st.uptime_s is None and st.wall is None:
            # `[  +0.1]` or `[<  0.1>]`: only the distance from the line before
            meta = self._inherit("dmesg-T" if self._last.wall else "dmesg")
            meta.uptime_s = None
        elif st.uptime_s is not None:
            meta = Meta("dmesg", st.uptime_s, st.wall)
        else:
            meta = Meta("dmesg-T", None, st.wall)
        self._last = meta
        return [self._emit(rest.strip(), lineno, meta)]

    def _iso(self, m: re.Match[str], lineno: int) -> list[KernelLine]:
        wall = parse_iso(m.group("iso"))
        if wall is None:
            return [self._unnamed(m.string, lineno)]
        rest = m.group("rest")
        ht = _HOST_TAG.match(rest)
        if ht:
            origin = "kernel" if ht.group("kernel") else ht.group("tag")
            msg = ht.group("msg")
            uptime = None
            if origin == "kernel":
                msg, uptime = strip_uptime(msg)
            meta = Meta("syslog", uptime, wall, ht.group("host"), origin)
        else:  # dmesg --time-format iso, alone or before other stamps
            found = dmesg_stamps(rest, wall.year)
            msg, uptime = (found[0], found[1].uptime_s) if found else (rest, None)
            meta = Meta("dmesg-T", uptime, wall)
        self._last = meta
        return [self._emit(msg.strip(), lineno, meta)]

    def _unix(self, m: re.Match[str], lineno: int) -> KernelLine | None:
        """`journalctl -o short-unix`: epoch seconds, then host and tag."""
        ht = _HOST_TAG.match(m.group(3))
        if ht is None:
            return None
        us = int(m.group(1)) * 1_000_000 + int(m.group(2).ljust(6, "0")[:6])
        return self._tagged(ht, "journal", from_epoch_us(us), lineno)

    def _full(self, m: re.Match[str], lineno: int) -> KernelLine | None:
        """`journalctl -o short-full`: weekday, date, time and zone, then host and tag."""
        # every line of this format has a host and a tag, so any tag is taken
        ht = _HOST_TAG.match(m.group("rest")) or _HOST_ANY_TAG.match(m.group("rest"))
        zone = m.group("zone") or ""
        offset = "+00:00" if zone in ("UTC", "GMT", "Z") else zone if zone[:1] in "+-" else ""
        wall = parse_iso(m.group("stamp").replace(" ", "T") + offset)
        if ht is None or wall is None:
            return None
        return self._tagged(ht, "journal", wall, lineno)

    def _tagged(
        self, ht: re.Match[str], fmt: LineFormat, wall: datetime | None, lineno: int
    ) -> KernelLine:
        """`host tag[pid]: msg` after a stamp; a kernel line's own `[uptime]` is read too."""
        origin = "kernel" if ht.group("kernel") else ht.group("tag")
        msg, uptime = ht.group("msg"), None
        if origin == "kernel":
            msg, uptime = strip_uptime(msg)
        meta = Meta(fmt, uptime, wall, ht.group("host"), origin)
        self._last = meta
        return self._emit(msg.strip(), lineno, meta)

    def _unnamed(self, text: str, lineno: int) -> KernelLine:
        """A line no format names: a syslog line cut before its stamp, or a paste's own prefix."""
        ht = _HOST_TAG.match(text)
        if ht:
            return self._tagged(ht, "syslog", None, lineno)
        if text.startswith("kernel:"):
            msg, uptime = strip_uptime(text[7:].lstrip())
            meta = Meta("syslog", uptime, None, None, "kernel")
            self._last = meta
            return self._emit(msg.strip(), lineno, meta)
        return self._emit(self._learner.strip(text), lineno, self._inherit("bare"))

    def _syslog(self, m: re.Match[str], lineno: int) -> list[KernelLine]:
        tag = m.group("tag")
        msg = m.group("msg")
        # BusyBox syslogd prints the facility.level where the tag belongs
        if "." in tag and msg.startswith("kernel:"):
            tag, msg = "kernel", msg[7:]
        year = int(m.group("year")) if m.group("year") else self._year_for(m.group("mon"))
        wall = None
        if year is not None:
            wall = parse_syslog_time(m.group("mon"), m.group("day"), m.group("hms"), year)
        ref = self._reference
        if wall and ref and year and not m.group("year") and wall > ref + _SKEW:
            # no year printed: the latest year that puts the stamp at or before the reference
            wall = parse_syslog_time(m.group("mon"), m.group("day"), m.group("hms"), year - 1)
        uptime = None
        if tag == "kernel":
            msg, uptime = strip_uptime(msg)
        meta = Meta("syslog", uptime, wall, m.group("host"), "kernel" if tag == "kernel" else tag)
        self._last = meta
        return [self._emit(msg.strip(), lineno, meta)]

    def _structured(self, found: tuple[str, Meta], lineno: int) -> list[KernelLine]:
        msg, meta = found
        self._last = meta
        parts = [p.strip() for p in split_record(msg)]
        return [self._emit(p, lineno, meta) for p in parts if p]

    # -- helpers -----------------------------------------------------------------

    def _inherit(self, fmt: LineFormat) -> Meta:
        last = self._last
        return Meta(fmt, last.uptime_s, last.wall, last.host, last.origin, last.prio, None)

    def _emit(self, text: str, lineno: int, meta: Meta) -> KernelLine:
        return KernelLine(
            text=text,
            fmt=meta.fmt,
            lineno=lineno,
            uptime_s=meta.uptime_s,
            wall=meta.wall,
            host=meta.host,
            origin=meta.origin,
            prio=meta.prio,
            seq=meta.seq,
            cursor=meta.cursor,
            offset=self._offset,
        )

    def _year_now(self) -> int | None:
        return self._reference.year if self._reference is not None else None

    def _year_for(self, month_token: str) -> int | None:
        ref = self._reference
        if ref is None:
            return None  # syslog prints no year; without a reference none is invented
        month = month_number(month_token) or 1
        return ref.year - 1 if month > ref.month else ref.year


# Messages printed by one printk without a newline in their format: a newline in
# them came from a process name or cgroup path and must not split the line.
_SINGLE_LINE = re.compile(
    r"(?:.{0,64}invoked oom-killer:|oom-kill:|[^:]{0,80}: Killed process |Killed process "
    r"|[^:]{0,80}: [Kk]ill process |oom_reaper: |Task in |CPU: |\[\s*\d+\] )",
    re.S,
)


def split_record(text: str) -> list[str]:
    """The lines of one log record: multi-line dumps split, single-line OOM messages kept whole."""
    if "\n" not in text or _SINGLE_LINE.match(text):
        return [text]
    return text.split("\n")


def _unescape_kmsg(body: str) -> str:
    raw = _KMSG_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), body)
    # the escapes encode bytes: re-read non-ASCII ones as UTF-8 where they form it
    try:
        return raw.encode("latin-1").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return raw


def _replace_prio(line: KernelLine, prio: int) -> KernelLine:
    origin = line.origin if prio < 8 else "user"
    return dataclasses.replace(line, origin=origin, prio=prio & 7)
