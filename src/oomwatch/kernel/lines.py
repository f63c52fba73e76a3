"""Recognise each log line's format and split it into metadata and kernel message text.

Formats are detected per line, so a paste that mixes `dmesg` output with journal
lines still reads right: raw `/dev/kmsg` records, `dmesg` (`[  1.2]`, `-T`, `-x`,
`-r`, ISO), syslog / kern.log / messages, journalctl (short, short-iso,
short-precise, short-monotonic, json) and bare message text. Quote prefixes (`> `)
and indentation from pasted reports are removed. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime

from oomwatch.kernel.timestamps import (
    from_epoch_us,
    month_number,
    parse_ctime,
    parse_iso,
    parse_syslog_time,
)
from oomwatch.model import KernelLine, LineFormat

_KMSG = re.compile(r"(\d{1,4}),(\d{1,20}),(\d{1,20}),([^;,]*)[^;]*;(.*)", re.S)
_KMSG_DICT = re.compile(r" [A-Z_]+=")
_KMSG_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_QUOTE = re.compile(r"\s*(?:>\s?)+")
_UPTIME = re.compile(r"\[\s*(\d{1,12})\.(\d{1,9})\]\s?")
_CALLER = re.compile(r"\[\s*[TC]\d{1,10}\]\s?")
_BRACKET = re.compile(r"\[([^\]]{8,64})\]\s?")
_PRIO = re.compile(r"<(\d{1,3})>")
_DMESG_X = re.compile(
    r"(kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])\s*:"
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
    r"(?P<host>\S+)\s+(?P<tag>[^\s:\[]+)(?:\[(?P<pid>\d+)\])?:\s?(?P<msg>.*)",
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
_HOST_TAG = re.compile(
    r"(?P<host>[\w.:-]+)\s+(?:(?P<kernel>kernel)|(?P<tag>[^\s:\[]+)\[(?P<pid>\d+)\]):\s?"
    r"(?P<msg>.*)",
    re.S,
)


@dataclass(slots=True)
class _Meta:
    fmt: LineFormat = "bare"
    uptime_s: float | None = None
    wall: datetime | None = None
    host: str | None = None
    origin: str = "kernel"
    prio: int | None = None
    seq: int | None = None
    cursor: str | None = None


class LineDecoder:
    """Turns raw log lines into `KernelLine`s, remembering what a bare line inherits.

    `reference` (for example the log file's modification time) gives the year of
    syslog stamps, which print none; a month after the reference's month is taken
    to be from the year before.
    """

    def __init__(self, *, reference: datetime | None = None) -> None:
        self._reference = reference
        self._last = _Meta()
        self._pending_cont: KernelLine | None = None
        self._offset: int | None = None
        self.malformed = 0

    def decode(
        self, raw: bytes | str, lineno: int = 0, offset: int | None = None
    ) -> list[KernelLine]:
        """The logical lines in one raw line (a kmsg record may hold several)."""
        self._offset = offset
        text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
        text = text.rstrip("\r\n")
        if self._last.fmt == "kmsg" and _KMSG_DICT.match(text):
            return []  # a kmsg dictionary property (` SUBSYSTEM=...`), not message text
        qm = _QUOTE.match(text)
        if qm:
            text = text[qm.end() :]
        text = text.strip()
        if not text:
            return []
        first = text[0]
        if first.isdigit():
            km = _KMSG.fullmatch(text)
            if km:
                return self._kmsg(km, lineno)
            im = _ISO.fullmatch(text)
            if im:
                return self._iso(im, lineno)
        elif first == "[":
            return self._bracketed(text, lineno)
        elif first == "{" and text.startswith('{"'):
            return self._journal_json(text, lineno)
        elif first == "<":
            pm = _PRIO.match(text)
            if pm:
                inner = self.decode(text[pm.end() :], lineno)
                prio = int(pm.group(1))
                return [_replace_prio(line, prio) for line in inner]
        if not first.isdigit() or "月" in text[:4] or "월" in text[:4]:
            sm = _SYSLOG.match(text)
            if sm and month_number(sm.group("mon")) is not None:
                return self._syslog(sm, lineno)
            xm = _DMESG_X.match(text)
            if xm:
                inner = self.decode(text[xm.end() :], lineno)
                prio = _LEVELS[xm.group(2)] if xm.group(1) == "kern" else 8 + _LEVELS[xm.group(2)]
                return [_replace_prio(line, prio) for line in inner]
        return [self._emit(text, lineno, self._inherit("bare"))]

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
        meta = _Meta(
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
        um = _UPTIME.match(text)
        if um:
            uptime = int(um.group(1)) + int(um.group(2)) / 10 ** len(um.group(2))
            rest = text[um.end() :]
            cm = _CALLER.match(rest)
            if cm:
                rest = rest[cm.end() :]
            ht = _HOST_TAG.match(rest)
            if ht:  # journalctl -o short-monotonic
                origin = "kernel" if ht.group("kernel") else ht.group("tag")
                meta = _Meta(
                    "journal",
                    uptime if origin == "kernel" else None,
                    None,
                    ht.group("host"),
                    origin,
                )
                self._last = meta
                return [self._emit(ht.group("msg").strip(), lineno, meta)]
            meta = _Meta("dmesg", uptime)
            self._last = meta
            return [self._emit(rest.strip(), lineno, meta)]
        bm = _BRACKET.match(text)
        if bm:
            wall = parse_ctime(bm.group(1))
            if wall is not None:
                meta = _Meta("dmesg-T", None, wall)
                self._last = meta
                rest = text[bm.end() :]
                cm = _CALLER.match(rest)
                if cm:
                    rest = rest[cm.end() :]
                return [self._emit(rest.strip(), lineno, meta)]
        return [self._emit(text, lineno, self._inherit("bare"))]

    def _iso(self, m: re.Match[str], lineno: int) -> list[KernelLine]:
        wall = parse_iso(m.group("iso"))
        if wall is None:
            return [self._emit(m.string, lineno, self._inherit("bare"))]
        rest = m.group("rest")
        ht = _HOST_TAG.match(rest)
        if ht:
            origin = "kernel" if ht.group("kernel") else ht.group("tag")
            msg = ht.group("msg")
            uptime = None
            if origin == "kernel":
                msg, uptime = _strip_uptime(msg)
            meta = _Meta("syslog", uptime, wall, ht.group("host"), origin)
        else:  # dmesg --time-format iso
            msg = rest
            meta = _Meta("dmesg-T", None, wall)
        self._last = meta
        return [self._emit(msg.strip(), lineno, meta)]

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
        uptime = None
        if tag == "kernel":
            msg, uptime = _strip_uptime(msg)
        meta = _Meta("syslog", uptime, wall, m.group("host"), "kernel" if tag == "kernel" else tag)
        self._last = meta
        return [self._emit(msg.strip(), lineno, meta)]

    def _journal_json(self, text: str, lineno: int) -> list[KernelLine]:
        try:
            rec = json.loads(text)
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or "MESSAGE" not in rec:
            self.malformed += 1
            return [self._emit(text, lineno, self._inherit("bare"))]
        msg = rec["MESSAGE"]
        if isinstance(msg, list):  # journald stores non-UTF-8 messages as byte arrays
            msg = bytes(b & 0xFF for b in msg if isinstance(b, int)).decode(
                "utf-8", "backslashreplace"
            )
        elif not isinstance(msg, str):
            msg = "" if msg is None else str(msg)
        kernel = rec.get("_TRANSPORT") == "kernel" or rec.get("SYSLOG_IDENTIFIER") == "kernel"
        mono = _int(rec.get("_SOURCE_MONOTONIC_TIMESTAMP"))
        if mono is None and kernel:
            mono = _int(rec.get("__MONOTONIC_TIMESTAMP"))
        real = _int(rec.get("_SOURCE_REALTIME_TIMESTAMP")) or _int(rec.get("__REALTIME_TIMESTAMP"))
        prio = _int(rec.get("PRIORITY"))
        meta = _Meta(
            fmt="journal-json",
            uptime_s=mono / 1_000_000 if mono is not None and kernel else None,
            wall=from_epoch_us(real) if real is not None else None,
            host=rec.get("_HOSTNAME") if isinstance(rec.get("_HOSTNAME"), str) else None,
            origin="kernel" if kernel else str(rec.get("SYSLOG_IDENTIFIER") or "journal"),
            prio=prio,
            cursor=rec.get("__CURSOR") if isinstance(rec.get("__CURSOR"), str) else None,
        )
        self._last = meta
        parts = [p.strip() for p in split_record(msg)]
        return [self._emit(p, lineno, meta) for p in parts if p]

    # -- helpers -----------------------------------------------------------------

    def _inherit(self, fmt: LineFormat) -> _Meta:
        last = self._last
        return _Meta(fmt, last.uptime_s, last.wall, last.host, last.origin, last.prio, None)

    def _emit(self, text: str, lineno: int, meta: _Meta) -> KernelLine:
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


def _strip_uptime(msg: str) -> tuple[str, float | None]:
    um = _UPTIME.match(msg)
    if not um:
        return msg, None
    uptime = int(um.group(1)) + int(um.group(2)) / 10 ** len(um.group(2))
    rest = msg[um.end() :]
    cm = _CALLER.match(rest)
    if cm:
        rest = rest[cm.end() :]
    return rest, uptime


def _unescape_kmsg(body: str) -> str:
    raw = _KMSG_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), body)
    # the escapes encode bytes: re-read non-ASCII ones as UTF-8 where they form it
    try:
        return raw.encode("latin-1").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return raw


def _int(v: object) -> int | None:
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return None


def _replace_prio(line: KernelLine, prio: int) -> KernelLine:
    origin = line.origin if prio < 8 else "user"
    return dataclasses.replace(line, origin=origin, prio=prio & 7)
