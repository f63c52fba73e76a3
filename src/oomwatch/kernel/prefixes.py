"""What stands before a kernel message on a pasted or rendered line.

Paste marks (`> `, `# `, `$ `, `| `), line-number columns (`grep -n`'s `123:` and
`123-`, `  123 | `, `cat -n`'s tab), terminal colours, and the stamps util-linux
`dmesg` prints for every `--time-format` and their combinations (`[ 12.3]`,
`[ 12.3 <  0.1>]`, `[<  0.1>]`, `[  +0.1]`, `[Dec 2 13:52]`,
`[Wed Dec  2 13:52:49 2026]`, ISO). Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from oomwatch.kernel.timestamps import month_number, parse_ctime, parse_iso

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A line-number column must not eat the hour of a time (`12:34:56`) or the year
# of a date (`2024-10-12`).
_PASTE = re.compile(
    r"(?:\s*(?:>+|[#$|](?=\s|$))|\s*\d{1,9}(?:\s*[:|]|-(?!\d{2}-)|\t)(?!\d{2}[:.]\d))+\s*"
)
# dmesg prints `<    0.000027>`, journalctl -o short-delta `<    0.000027 >` and pads
# the first line's bracket with spaces
_DELTA = r"(?:\s*<\s*\d{1,12}\.\d{1,9}\s*>)?\s*"
_UPTIME = re.compile(r"\[\s*(\d{1,12})\.(\d{1,9})" + _DELTA + r"\]\s?")
_ONLY_DELTA = re.compile(r"\[(?:<\s*\d{1,12}\.\d{1,9}\s*>|\s*\+\s*\d{1,12}\.\d{1,9})\]\s?")
_RELTIME = re.compile(r"\[([^\W\d_]{3}) ?(\d{1,2}) (\d{1,2}):(\d{2})\]\s?")
_CTIME = re.compile(r"\[([^\]<]{8,64}?)" + _DELTA + r"\]\s?")
_ISO_STAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?(?=\s)\s?"
)
_CALLER = re.compile(r"\[\s*[TC]\d{1,10}\]\s?")
# Where a kernel OOM message can begin inside a line whose prefix no format names.
_ANCHOR = re.compile(
    r" invoked oom-killer:|Memory cgroup out of memory|Out of memory|Killed process \d"
    r"|oom-kill:|Task in /|memory: usage|oom_reaper: |Tasks state|\[\s*pid\s*\]"
)
_DATEISH = re.compile(
    r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}T?|\[[^\]]*\]"
    r"|\b(?:kernel|Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b:?"
)
_WORD = re.compile(r"[^\W\d_][\w.-]*")


@dataclass(slots=True)
class Stamps:
    """The stamps found before a message: dmesg's uptime and wall clock, either may be absent."""

    uptime_s: float | None = None
    wall: datetime | None = None
    minute_only: bool = False
    relative: bool = False


def clean(text: str) -> str:
    """The line without terminal colours and paste marks or line-number columns."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    m = _PASTE.match(text)
    return text[m.end() :] if m else text


def dmesg_stamps(text: str, year: int | None) -> tuple[str, Stamps] | None:
    """Strip every leading stamp dmesg can print; None when the line does not start with one.

    `year` completes `--reltime` stamps (`[Dec 2 13:52]`), which print none.
    """
    stamps = Stamps()
    pos, found = 0, False
    while True:
        rest = text[pos:]
        if m := _UPTIME.match(rest):
            stamps.uptime_s = int(m.group(1)) + int(m.group(2)) / 10 ** len(m.group(2))
        elif m := _ONLY_DELTA.match(rest):
            stamps.relative = True
        elif (m := _RELTIME.match(rest)) and (month := month_number(m.group(1))):
            if year is not None:
                stamps.wall = _minute(year, month, m)
                stamps.minute_only = stamps.wall is not None
        elif (m := _CTIME.match(rest)) and (wall := parse_ctime(m.group(1))) is not None:
            stamps.wall, stamps.minute_only = wall, False
        elif found and (m := _ISO_STAMP.match(rest)):
            stamps.wall = parse_iso(m.group(0).strip()) or stamps.wall
        elif found and (m := _CALLER.match(rest)):
            pass
        else:
            break
        pos += m.end()
        found = True
    return (text[pos:], stamps) if found else None


def strip_uptime(msg: str) -> tuple[str, float | None]:
    """A syslog kernel line's `[ 12.345]` (and caller id), removed and read."""
    um = _UPTIME.match(msg)
    if not um:
        return msg, None
    uptime = int(um.group(1)) + int(um.group(2)) / 10 ** len(um.group(2))
    rest = msg[um.end() :]
    cm = _CALLER.match(rest)
    if cm:
        rest = rest[cm.end() :]
    return rest, uptime


class PrefixLearner:
    """Finds a kernel message after a prefix no format names, and learns that prefix's shape.

    A prefix is taken only when it reads as a log's own columns (no words but a
    date, a time and at most one host name), so a kill quoted inside another
    program's message is not taken for the kernel's. Once taken, its shape
    (digits as any digits) strips the same prefix from the report's other lines.
    """

    def __init__(self) -> None:
        self._shape: re.Pattern[str] | None = None

    def strip(self, text: str) -> str:
        """The message in `text`, with an unnamed prefix removed when it can be trusted."""
        if self._shape is not None and (m := self._shape.match(text)) and m.end() < len(text):
            return text[m.end() :]
        a = _ANCHOR.search(text)
        if a is None:
            return text
        start = a.start()
        if text.startswith(" invoked", start):  # the message begins with the comm before it
            start = text.rfind(" ", 0, start) + 1
        if start == 0:
            return text
        prefix = text[:start]
        if not _log_columns(prefix):
            return text
        self._shape = _shape_of(prefix)
        return text[start:]


def _log_columns(prefix: str) -> bool:
    rest = _DATEISH.sub(" ", prefix)
    if any(c in rest for c in "=\"'"):
        return False
    words = [w for w in _WORD.findall(rest) if month_number(w) is None]
    return len(words) <= 1


def _shape_of(prefix: str) -> re.Pattern[str]:
    parts = re.split(r"(\d+|\s+)", prefix)
    out = []
    for p in parts:
        if not p:
            continue
        if p.isdigit():
            out.append(r"\d+")
        elif p.isspace():
            out.append(r"\s+")
        else:
            out.append(re.escape(p))
    return re.compile("".join(out))


def _minute(year: int, month: int, m: re.Match[str]) -> datetime | None:
    try:
        return datetime(year, month, int(m.group(2)), int(m.group(3)), int(m.group(4)))
    except ValueError:
        return None
