"""What every notifier says about an incident, and escaping for each sink."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from oomwatch.incidents import Incident

TRUNCATED = " … [truncated]"


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, with a visible marker when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(TRUNCATED), 0)] + TRUNCATED


def slack_escape(text: str) -> str:
    """Slack mrkdwn: `&`, `<`, `>` escaped, so `<!channel>` or `<url|x>` show as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_escape(text: str) -> str:
    """HTML text."""
    return html.escape(text, quote=True)


def header_safe(text: str, limit: int = 200) -> str:
    """One line for an email header: control characters (CR, LF) become spaces."""
    return truncate("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text), limit)


def facts(inc: Incident) -> list[tuple[str, str]]:
    """The key facts of an incident as (label, plain text) pairs, in display order."""
    b = inc.body
    out: list[tuple[str, str]] = []
    v = b.get("victim") or {}
    if v.get("pid") is not None or v.get("comm"):
        who = f"{v.get('comm')} (pid {v.get('pid')})"
        if v.get("user") or v.get("uid") is not None:
            who += f", user {v.get('user') or v.get('uid')}"
        out.append(("Victim", who))
    if v.get("cmdline"):
        out.append(("Command", " ".join(v["cmdline"])))
    if v.get("rss_kb") is not None:
        out.append(("Resident memory", f"{v['rss_kb'] / 1024:.1f} MiB"))
    if b.get("where"):
        out.append(("Where", str(b["where"])))
    memcg = b.get("memcg") or {}
    if memcg.get("limit_kb") is not None and memcg["limit_kb"] < 2**50:
        out.append(("Limit", f"{memcg['limit_kb'] / 1024:.1f} MiB of {b.get('oom_memcg')}"))
    if b.get("subject") and b.get("kind") != "oom_kill":
        out.append(("Subject", str(b["subject"])))
    out.append(("Host", str(b.get("host") or "")))
    when = b.get("time") or _iso(b.get("detected_at"))
    if when:
        out.append(("Time", str(when)))
    return out


def details(inc: Incident) -> tuple[str, list[str]]:
    """(why, advice) in plain text."""
    e = inc.body.get("explanation") or {}
    why = " ".join(e.get("details") or [])
    return why, list(e.get("advice") or [])


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


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, int | float):
        return None
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds")
