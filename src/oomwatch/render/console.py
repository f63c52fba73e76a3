"""What the console shows of an incident: a block for a terminal, one line for a log.

A person at a terminal reads the headline (local time, host, what was killed,
where) and two or three facts; the advice comes once per incident key, and later
kills of the key say which earlier one they repeat. A log (journald, `kubectl
logs`) gets one plain line per incident. Untrusted text (process names, command
lines, cgroup paths) goes through `terminal()`, so it can neither colour nor move
the cursor, nor break a line in two.
"""

from __future__ import annotations

import datetime as dt

from oomwatch.model import UNLIMITED_KB, Incident
from oomwatch.model.facts import BacklogFacts
from oomwatch.notify.facts import user_text
from oomwatch.render.escape import terminal, truncate

# A kill the log shows this long before the agent read it is from the backlog
# (read at start, or after a restart): it is marked with its own time.
BACKLOG_S = 60.0
COMMAND_CHARS = 300
BACKLOG_SHOWN = 10  # kills listed of a first start's summary; the rest counted

RESET = "\x1b[0m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
SEVERITY_COLOUR = {"critical": "\x1b[1;31m", "warning": "\x1b[1;33m", "info": "\x1b[1;36m"}
RESOLVED_COLOUR = "\x1b[1;32m"


def when(inc: Incident) -> dt.datetime:
    """When it happened, in local time: the kill's own time, else when it was detected."""
    k = inc.kill
    if k is not None and k.kill.time is not None:
        return k.kill.time.astimezone()
    return dt.datetime.fromtimestamp(inc.detected_at).astimezone()


def is_backlog(inc: Incident) -> bool:
    """A kill read from the log well after it happened (at start, or after a restart)."""
    k = inc.kill
    if k is None or k.kill.time is None or inc.followup is not None:
        return False
    return inc.detected_at - k.kill.time.timestamp() > BACKLOG_S


def label(inc: Incident) -> str:
    """What kind of thing it is, in two words or fewer."""
    drill = "DRILL " if inc.drill else ""
    if inc.status == "resolved":
        return drill + "resolved"
    if inc.kind == "oom_kill":
        n = inc.followup.count if inc.followup is not None else 0
        return drill + (f"{n} more OOM kills" if n > 1 else "OOM kill")
    return drill + {
        "log_gap": "log gap",
        "kills_before_start": "earlier kills",
        "unseen_oom_kill": "OOM kill",
    }.get(inc.kind, inc.severity)


def subject(inc: Incident) -> str:
    """What was killed and where, or the incident's title for anything else."""
    v, k = inc.victim, inc.kill
    if v is None or k is None or inc.followup is not None:
        return inc.title
    where = k.where
    return f"{v.comm} (pid {v.pid})" + (f" in {where}" if where != "the host" else " on the host")


def key_facts(inc: Incident) -> list[str]:
    """The two or three facts that matter most, as `name value` phrases."""
    k = inc.kill
    if k is None:
        return []
    out = []
    v, m = k.kill.victim, k.kill.memcg
    if m is not None and m.limit_kb < UNLIMITED_KB:
        out.append(f"limit {m.limit_kb / 1024:.1f} MiB of {k.kill.oom_memcg}")
    if v.rss_kb is not None:
        out.append(f"resident {v.rss_kb / 1024:.1f} MiB")
    user = user_text(k.process.user, v.uid)
    if user:
        out.append(f"user {user}")
    return out


def _clock(t: dt.datetime, now: dt.datetime) -> str:
    return t.strftime("%H:%M:%S" if t.date() == now.date() else "%b %d %H:%M:%S")


def block(inc: Incident, *, first: dt.datetime | None, colour: bool, now: dt.datetime) -> str:
    """The incident for a terminal: headline, then (first of its key) facts and advice."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if colour else text

    t = when(inc)
    backlog = is_backlog(inc)
    tone = RESOLVED_COLOUR if inc.status == "resolved" else SEVERITY_COLOUR.get(inc.severity, BOLD)
    stamp = _clock(t, now) + (" (earlier, from the log)" if backlog else "")
    head = (
        f"{paint(DIM if backlog else BOLD, stamp)} {terminal(inc.host)}  "
        f"{paint(tone, label(inc))}  {paint(BOLD, terminal(subject(inc)))}"
    )
    if first is not None:
        return head + paint(DIM, f"  same as {_clock(first, now)}") + "\n"
    lines = [head]
    e = inc.explanation
    if e is not None and e.headline and inc.followup is None and subject(inc) != inc.title:
        lines.append("  " + terminal(inc.title))
    if isinstance(inc.facts, BacklogFacts):
        lines += ["  " + terminal(k) for k in inc.facts.kills[:BACKLOG_SHOWN]]
        if inc.facts.count > BACKLOG_SHOWN:
            lines.append(paint(DIM, f"  … and {inc.facts.count - BACKLOG_SHOWN} more"))
    facts = key_facts(inc)
    if facts:
        lines.append("  " + terminal(" · ".join(facts)))
    k = inc.kill
    if k is not None and k.process.cmdline and inc.followup is None:
        command = truncate(" ".join(k.process.cmdline), COMMAND_CHARS)
        lines.append("  " + paint(DIM, "command ") + terminal(command))
    if e is not None and e.advice:
        lines.append("  " + paint(DIM, "what to do:"))
        lines += ["    - " + terminal(a) for a in e.advice]
    return "\n".join(lines) + "\n"


def line(inc: Incident, *, first: dt.datetime | None) -> str:
    """The incident as one plain line for a log: ISO time, host, what, and the key facts."""
    t = when(inc)
    head = f"{t.isoformat(timespec='seconds')} {inc.host} {label(inc)}: {inc.title}"
    parts = key_facts(inc)
    k = inc.kill
    if k is not None and k.process.cmdline and inc.followup is None:
        parts.append("command " + truncate(" ".join(k.process.cmdline), COMMAND_CHARS))
    if is_backlog(inc):
        parts.append(f"read from the log at {when_read(inc)}")
    if first is not None:
        parts.append(f"same as {first.isoformat(timespec='seconds')}")
    parts.append(f"key {inc.key}")
    return terminal(f"{head} [{'; '.join(parts)}]") + "\n"


def when_read(inc: Incident) -> str:
    """When the agent read it, in local ISO time."""
    return dt.datetime.fromtimestamp(inc.detected_at).astimezone().isoformat(timespec="seconds")
