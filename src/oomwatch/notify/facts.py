"""What every notifier says about an incident, and escaping for each sink."""

from __future__ import annotations

import datetime as dt
import html

from oomwatch.model import UNLIMITED_KB, Incident
from oomwatch.render.escape import TRUNCATED, truncate

__all__ = [
    "TRUNCATED",
    "details",
    "facts",
    "header_safe",
    "html_escape",
    "plain_text",
    "truncate",
    "user_text",
]


def user_text(user: str | None, uid: int | None) -> str | None:
    """A user as every sink shows it: `root (uid 0)`, `uid 1001`, or the name alone."""
    if user and uid is not None:
        return f"{user} (uid {uid})"
    if uid is not None:
        return f"uid {uid}"
    return user


def html_escape(text: str) -> str:
    """HTML text."""
    return html.escape(text, quote=True)


def header_safe(text: str, limit: int = 200) -> str:
    """One line for an email header: control characters (CR, LF) become spaces."""
    return truncate("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text), limit)


def facts(inc: Incident) -> list[tuple[str, str]]:
    """The key facts of an incident as (label, plain text) pairs, in display order."""
    out: list[tuple[str, str]] = []
    k = inc.kill
    if k is not None:
        v = k.kill.victim
        who = f"{v.comm} (pid {v.pid})"
        user = user_text(k.process.user, v.uid)
        if user:
            who += f", user {user}"
        out.append(("Victim", who))
        if k.process.cmdline:
            out.append(("Command", " ".join(k.process.cmdline)))
        if v.rss_kb is not None:
            out.append(("Resident memory", f"{v.rss_kb / 1024:.1f} MiB"))
        out.append(("Where", k.where))
        m = k.kill.memcg
        if m is not None and m.limit_kb < UNLIMITED_KB:
            out.append(("Limit", f"{m.limit_kb / 1024:.1f} MiB of {k.kill.oom_memcg}"))
    elif inc.where:
        out.append(("Subject", inc.where))
    if inc.followup is not None:
        out.append(("Count", f"{inc.followup.count} more since the first message"))
    out.append(("Host", inc.host))
    when = (
        inc.kill.kill.time.isoformat() if inc.kill and inc.kill.kill.time else _iso(inc.detected_at)
    )
    out.append(("Time", when))
    return out


def details(inc: Incident) -> tuple[str, list[str]]:
    """(why, advice) in plain text."""
    e = inc.explanation
    if e is None:
        return "", []
    return " ".join(e.details), list(e.advice)


def plain_text(inc: Incident) -> str:
    """The whole incident as plain text (email body, logs)."""
    lines = [inc.title, ""]
    lines += [f"{k}: {v}" for k, v in facts(inc)]
    why, advice = details(inc)
    if why:
        lines += ["", why]
    if advice:
        lines += ["", "What to do:"] + [f"- {a}" for a in advice]
    lines += ["", f"Incident key: {inc.key}"]
    return "\n".join(lines)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds")


MAX_PIDS = 100


def pids(inc: Incident) -> list[int]:
    """The killed processes a message tells of (a follow-up's, bounded), for machines."""
    if inc.followup is not None:
        return [int(p) for p in inc.followup.pids[:MAX_PIDS] if p]
    v = inc.victim
    return [v.pid] if v is not None and v.pid else []
