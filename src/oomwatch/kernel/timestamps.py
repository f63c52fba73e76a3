"""Wall-clock stamps as log tools print them: syslog, journalctl and `dmesg -T`, in many locales."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# Abbreviated and full month names of the locales most often seen in pasted logs.
# Keys are lower case without a trailing dot; `dmesg -T` and journalctl print the
# locale's %b, which is sometimes the full name (French "avril", Spanish "abr").
_MONTHS_BY_LOCALE: tuple[tuple[str, ...], ...] = (
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    (
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ),
    ("janv", "févr", "mars", "avr", "mai", "juin", "juil", "août", "sept", "oct", "nov", "déc"),
    (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    ("jan", "feb", "mär", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "dez"),
    (
        "januar",
        "februar",
        "märz",
        "april",
        "mai",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "dezember",
    ),
    ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),
    ("gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic"),
    ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"),
    ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    ("sty", "lut", "mar", "kwi", "maj", "cze", "lip", "sie", "wrz", "paź", "lis", "gru"),
    ("led", "úno", "bře", "dub", "kvě", "čer", "čvc", "srp", "zář", "říj", "lis", "pro"),
    ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    ("oca", "şub", "mar", "nis", "may", "haz", "tem", "ağu", "eyl", "eki", "kas", "ara"),
    ("янв", "фев", "мар", "апр", "май", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"),
    ("янв", "февр", "марта", "апр", "мая", "июня", "июля", "авг", "сент", "окт", "нояб", "дек"),
    ("січ", "лют", "бер", "кві", "тра", "чер", "лип", "сер", "вер", "жов", "лис", "гру"),
)

MONTHS: dict[str, int] = {}
for _names in _MONTHS_BY_LOCALE:
    for _i, _name in enumerate(_names, start=1):
        MONTHS.setdefault(_name, _i)

# CJK locales print the month as a number followed by 月 (zh, ja) or 월 (ko).
_CJK_MONTH = re.compile(r"^(\d{1,2})(?:月|월)$")
_TIME = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?")
_YEAR = re.compile(r"^(?:19|20|21)\d{2}(?:年|년)?$")
_DAY = re.compile(r"^(\d{1,2})(?:日|일|\.)?,?$")


def month_number(token: str) -> int | None:
    """The month (1-12) a localized month token names, or None."""
    t = token.strip().rstrip(".,").lower()
    if t in MONTHS:
        return MONTHS[t]
    m = _CJK_MONTH.match(t)
    if m and 1 <= int(m.group(1)) <= 12:
        return int(m.group(1))
    return None


def parse_ctime(text: str) -> datetime | None:
    """Parse a `dmesg -T` stamp such as `Fri Jan 15 08:35:34 2021`, in any locale we know.

    The tokens are recognised by shape, not position, because each locale orders
    them its own way (`dim. 19 avril 2020 ...`, `二 9月  3 10:00:00 2020`).
    """
    tm = _TIME.search(text)
    if tm is None:
        return None
    year = month = day = None
    for token in (text[: tm.start()] + " " + text[tm.end() :]).split():
        if year is None and _YEAR.match(token):
            year = int(token[:4])
            continue
        if month is None:
            mnum = month_number(token)
            if mnum is not None:
                month = mnum
                continue
        if day is None:
            dm = _DAY.match(token)
            if dm and 1 <= int(dm.group(1)) <= 31:
                day = int(dm.group(1))
    if year is None or month is None or day is None:
        return None
    return _build(year, month, day, tm)


def parse_syslog_time(month_token: str, day: str, hms: str, year: int) -> datetime | None:
    """A classic syslog stamp (`Nov 24 19:52:22`) in the given year, naive local time."""
    month = month_number(month_token)
    tm = _TIME.fullmatch(hms)
    if month is None or tm is None:
        return None
    return _build(year, month, int(day), tm)


def parse_iso(text: str) -> datetime | None:
    """An ISO 8601 stamp as rsyslog, journalctl short-iso and `dmesg --time-format iso` print it."""
    t = text.replace(",", ".")
    # journalctl prints +0000; fromisoformat wants +00:00 before Python 3.11's relaxed rules
    if re.search(r"[+-]\d{4}$", t):
        t = t[:-2] + ":" + t[-2:]
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return None


def from_epoch_us(us: int) -> datetime:
    """A UTC datetime from microseconds since the epoch (journald's timestamps)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _build(year: int, month: int, day: int, tm: re.Match[str]) -> datetime | None:
    frac = tm.group(4)
    micro = int((frac + "000000")[:6]) if frac else 0
    try:
        return datetime(
            year, month, day, int(tm.group(1)), int(tm.group(2)), int(tm.group(3)), micro
        )
    except ValueError:
        return None
