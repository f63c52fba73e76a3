"""Structured log records: journal JSON, `journalctl -o export` and `dmesg --json`.

Each gives a message with its metadata (`Meta`). The line-per-field forms
(`"key": value,` and `KEY=value`) are gathered until their message field: the
stamps come before it in both, so a message is emitted as soon as it is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from oomwatch.kernel.timestamps import from_epoch_us
from oomwatch.model import LineFormat

_DMESG_FIELD = re.compile(r'"(pri|fac|time|caller|msg)":\s*(.*?),?')
_EXPORT_FIELD = re.compile(
    r"(__CURSOR|__REALTIME_TIMESTAMP|__MONOTONIC_TIMESTAMP|_SOURCE_MONOTONIC_TIMESTAMP"
    r"|_SOURCE_REALTIME_TIMESTAMP|_TRANSPORT|_HOSTNAME|PRIORITY|SYSLOG_FACILITY|SYSLOG_IDENTIFIER"
    r"|MESSAGE)=(.*)",
    re.S,
)


@dataclass(slots=True)
class Meta:
    """What a log line says about its message: format, clocks, host, origin, sequence."""

    fmt: LineFormat = "bare"
    uptime_s: float | None = None
    wall: datetime | None = None
    host: str | None = None
    origin: str = "kernel"
    prio: int | None = None
    seq: int | None = None
    cursor: str | None = None


def journal_record(rec: dict[str, object], fmt: LineFormat) -> tuple[str, Meta]:
    """The message and metadata of one journal record's fields."""
    msg = rec.get("MESSAGE")
    if isinstance(msg, list):  # journald stores non-UTF-8 messages as byte arrays
        msg = bytes(b & 0xFF for b in msg if isinstance(b, int)).decode("utf-8", "backslashreplace")
    elif not isinstance(msg, str):
        msg = "" if msg is None else str(msg)
    kernel = _from_the_kernel(rec)
    mono = to_int(rec.get("_SOURCE_MONOTONIC_TIMESTAMP"))
    if mono is None and kernel:
        mono = to_int(rec.get("__MONOTONIC_TIMESTAMP"))
    real = to_int(rec.get("_SOURCE_REALTIME_TIMESTAMP")) or to_int(rec.get("__REALTIME_TIMESTAMP"))
    host = rec.get("_HOSTNAME")
    cursor = rec.get("__CURSOR")
    meta = Meta(
        fmt=fmt,
        uptime_s=mono / 1_000_000 if mono is not None and kernel else None,
        wall=from_epoch_us(real) if real is not None else None,
        host=host if isinstance(host, str) else None,
        origin="kernel" if kernel else _origin(rec),
        prio=to_int(rec.get("PRIORITY")),
        cursor=cursor if isinstance(cursor, str) else None,
    )
    return msg, meta


def _from_the_kernel(rec: dict[str, object]) -> bool:
    """Kernel text, not a forgery: the kernel transport with the kernel facility (0).

    A process that writes to /dev/kmsg reaches journald with `_TRANSPORT=kernel` too,
    but the kernel gives it facility 1 or more; `logger -t kernel` sets only the
    identifier. Pasted records that lack the transport fall back to the identifier.
    """
    facility = rec.get("SYSLOG_FACILITY")
    if facility is not None and str(facility) != "0":
        return False
    transport = rec.get("_TRANSPORT")
    if transport is not None:
        return transport == "kernel"
    return rec.get("SYSLOG_IDENTIFIER") == "kernel"


def _origin(rec: dict[str, object]) -> str:
    if rec.get("_TRANSPORT") == "kernel":
        return "kmsg-user"  # written to /dev/kmsg by a process
    tag = str(rec.get("SYSLOG_IDENTIFIER") or "journal")
    return "user:kernel" if tag == "kernel" else tag  # a program that calls itself kernel


def parse_journal_json(text: str) -> tuple[str, Meta] | None:
    """One `journalctl -o json` line; None when it is not a journal record."""
    try:
        rec = json.loads(text)
    except ValueError:
        return None
    if not isinstance(rec, dict) or "MESSAGE" not in rec:
        return None
    return journal_record(rec, "journal-json")


@dataclass(slots=True)
class FieldRecords:
    """Gathers line-per-field records until their message."""

    dmesg: dict[str, str] = field(default_factory=dict)
    export: dict[str, object] = field(default_factory=dict)
    last_host: str | None = None
    malformed: int = 0

    def dmesg_field(self, text: str) -> tuple[str, Meta] | bool | None:
        """A `dmesg --json` field line: its record when complete, True when kept, else None."""
        m = _DMESG_FIELD.fullmatch(text)
        if m is None:
            return None
        key, value = m.groups()
        if key != "msg":
            self.dmesg[key] = value.strip().strip('"')
            return True
        fields, self.dmesg = self.dmesg, {}
        try:
            msg = json.loads(value)
        except ValueError:
            self.malformed += 1
            return True
        prio = to_int(fields.get("pri"))
        fac = fields.get("fac")
        user = (prio is not None and prio >= 8) or (fac is not None and fac != "kern")
        meta = Meta("dmesg", _float(fields.get("time")), None, None, "user" if user else "kernel")
        meta.prio = prio & 7 if prio is not None else None
        return str(msg), meta

    def export_field(self, text: str) -> tuple[str, Meta] | bool | None:
        """A `journalctl -o export` field line, as `dmesg_field`."""
        m = _EXPORT_FIELD.fullmatch(text)
        if m is None:
            return None
        key, value = m.groups()
        if key == "__CURSOR":
            self.export = {}
        self.export[key] = value
        if key == "_HOSTNAME":
            self.last_host = value
        if key != "MESSAGE":
            return True
        msg, meta = journal_record(self.export, "journal")
        meta.host = meta.host or self.last_host  # printed after the message
        self.export = {}
        return msg, meta


def to_int(v: object) -> int | None:
    """An integer field, from a number or a string of digits."""
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return None


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None
