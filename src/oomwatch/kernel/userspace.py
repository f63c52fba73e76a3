"""Kills by user-space OOM killers: earlyoom and systemd-oomd."""

from __future__ import annotations

import re
from dataclasses import dataclass

_EARLYOOM = re.compile(
    r"(?:sending (?P<sig>SIG[A-Z]+) to|killing) process (?P<pid>\d+)(?: uid (?P<uid>\d+))? "
    r'"(?P<comm>.*?)"(?: with signal (?P<signum>\d+))?: (?:badness|oom_score) (?P<score>-?\d+)'
    r"(?:, VmRSS (?P<rss>\d+) MiB)?"
)
_EARLYOOM_LOW = re.compile(r"low memory! (?P<why>.+)")
# v247-v252 print "Killed <cgroup> due to ..."; later versions "Marked <cgroup> for
# killing due to ..." (the kill follows at once). "Considered N cgroups for killing"
# is a survey, not a kill, and has no "due to".
_OOMD = re.compile(
    r"(?:Killed|Marked) (?P<cgroup>/\S*) (?:for killing )?due to (?P<reason>.+?)\.?\s*"
)
OOMD_STARTS = ("Killed /", "Marked /")
_OOMD_COUNT = re.compile(
    r"(?P<unit>\S+): systemd-oomd killed (?P<n>\d+) process\(es\) in this unit\.?"
)
_SIGNALS = {"9": "SIGKILL", "15": "SIGTERM", "2": "SIGINT", "1": "SIGHUP"}


@dataclass(frozen=True, slots=True)
class EarlyoomKill:
    """earlyoom sending a signal to a process."""

    pid: int
    comm: str
    uid: int | None
    signal: str | None
    score: int
    rss_kb: int | None


@dataclass(frozen=True, slots=True)
class OomdKill:
    """systemd-oomd killing every process of a cgroup."""

    cgroup: str
    reason: str


def parse_earlyoom(text: str) -> EarlyoomKill | None:
    """Earlyoom's `sending SIGTERM to process N uid U "comm": badness B, VmRSS R MiB`."""
    m = _EARLYOOM.match(text)
    if m is None:
        return None
    sig = m.group("sig")
    if sig is None and m.group("signum"):
        sig = _SIGNALS.get(m.group("signum"), f"signal {m.group('signum')}")
    rss = m.group("rss")
    return EarlyoomKill(
        pid=int(m.group("pid")),
        comm=m.group("comm"),
        uid=int(m.group("uid")) if m.group("uid") else None,
        signal=sig,
        score=int(m.group("score")),
        rss_kb=int(rss) * 1024 if rss else None,
    )


def parse_earlyoom_low(text: str) -> str | None:
    """The reason earlyoom gives before it kills (`low memory! at or below SIGTERM limits ...`)."""
    m = _EARLYOOM_LOW.match(text)
    return m.group("why") if m else None


def parse_oomd(text: str) -> OomdKill | None:
    """systemd-oomd's `Killed <cgroup> due to <reason>` (v247) or `Marked <cgroup> for killing`."""
    m = _OOMD.fullmatch(text)
    return OomdKill(m.group("cgroup"), m.group("reason")) if m else None


def parse_oomd_count(text: str) -> tuple[str, int] | None:
    """(unit, count) from systemd's `<unit>: systemd-oomd killed N process(es) in this unit.`."""
    m = _OOMD_COUNT.fullmatch(text)
    return (m.group("unit"), int(m.group("n"))) if m else None
