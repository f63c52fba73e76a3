"""Dedup and grouping: decide, per receiver and incident key, whether to send now and why.

Events (kills, log gaps, unseen kills): the first of a key is sent at once; repeats
within `group_interval` are folded and go out together in one follow-up when the
interval ends. Conditions: firing is sent once, again after `repeat_interval` or
when it escalates, and resolved is always sent. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from oomwatch.incidents import Incident

Action = Literal["send", "fold", "drop"]
Reason = Literal[
    "first", "new_after_interval", "folded", "resolved", "repeat_interval", "escalated", "duplicate"
]
CONDITIONS = frozenset({"memory_low", "swap_low", "memory_pressure", "cgroup_near_limit"})
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class GroupState:
    """What was last sent to a receiver for a key."""

    last_sent: float
    last_status: str
    last_severity: str
    followup_at: float | None


def decide(
    inc: Incident,
    group: GroupState | None,
    now: float,
    *,
    group_interval: float,
    repeat_interval: float,
) -> tuple[Action, Reason]:
    """Send, fold into the next follow-up, or drop as a duplicate; and the reason."""
    if inc.kind in CONDITIONS:
        if inc.status == "resolved":
            return "send", "resolved"
        if group is None or group.last_status == "resolved":
            return "send", "first"
        if SEVERITY_RANK.get(inc.severity, 0) > SEVERITY_RANK.get(group.last_severity, 0):
            return "send", "escalated"
        if now - group.last_sent >= repeat_interval:
            return "send", "repeat_interval"
        return "drop", "duplicate"
    if group is None:
        return "send", "first"
    if now - group.last_sent >= group_interval and group.followup_at is None:
        return "send", "new_after_interval"
    return "fold", "folded"


def unplaced(inc: Incident) -> bool:
    """A memcg kill whose report the kernel rate-limited: its cgroup is unknown."""
    b = inc.body
    return bool(
        inc.kind == "oom_kill"
        and not b.get("task_memcg")
        and not b.get("oom_memcg")
        and not b.get("container")
        and str(b.get("message") or "").startswith("Memory cgroup")
    )


def followup(
    last: Incident,
    pids: list[str],
    incident_ids: list[str],
    receiver: str,
    group_interval: float,
    *,
    key: str | None = None,
    unplaced_count: int = 0,
) -> Incident:
    """One incident that tells of every folded repeat: how many, which pids, over what time."""
    b = last.body
    victim = b.get("victim") or {}
    n = len(incident_ids)
    minutes = max(round(group_interval / 60), 1)
    shown = ", ".join(pids[:20]) + (f" and {len(pids) - 20} more" if len(pids) > 20 else "")
    if last.kind == "oom_kill":
        where = f" in {b['where']}" if b.get("where") and b["where"] != "the host" else ""
        title = (
            f"{n} more OOM kill{'s' if n != 1 else ''} of {victim.get('comm')}{where} on "
            f"{b.get('host')} in the last {minutes} min"
        )
        if shown:
            title += f" (pids {shown})"
        if unplaced_count:
            which = "them" if unplaced_count == n else f"{unplaced_count} of them"
            title += f"; the kernel printed no cgroup for {which}: its reports were rate-limited"
    else:
        title = f"{n} more: {last.title} (in the last {minutes} min)"
    body = {
        **b,
        "followup": {
            "count": n,
            "pids": pids,
            "incidents": incident_ids,
            "group_interval_s": group_interval,
            "cgroup_unknown": unplaced_count,
        },
    }
    return Incident(
        f"followup:{receiver}:{incident_ids[0]}",
        key or last.key,
        last.kind,
        last.status,
        last.severity,
        title,
        last.detected_at,
        body,
    )
