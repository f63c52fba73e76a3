"""Dedup and grouping: decide, per receiver and incident key, whether to send now and why.

Events (kills, log gaps, unseen kills): the first of a key is sent at once; repeats
within `group_interval` are folded and go out together in one follow-up when the
interval ends. Conditions: firing is sent once, again after `repeat_interval` or
when it escalates, and resolved is always sent. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from oomwatch.model import FollowUp, Incident
from oomwatch.store import GroupState

Action = Literal["send", "fold", "drop"]
Reason = Literal[
    "first", "new_after_interval", "folded", "resolved", "repeat_interval", "escalated", "duplicate"
]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SHOWN_PIDS = 20


def decide(
    inc: Incident,
    group: GroupState | None,
    now: float,
    *,
    group_interval: float,
    repeat_interval: float,
) -> tuple[Action, Reason]:
    """Send, fold into the next follow-up, or drop as a duplicate; and the reason."""
    if inc.category == "condition":
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


def followup(
    last: Incident,
    pids: list[int],
    incident_ids: list[str],
    receiver: str,
    group_interval: float,
    *,
    key: str | None = None,
    unplaced_count: int = 0,
) -> Incident:
    """One incident that tells of every folded repeat: how many, which pids, over what time."""
    n = len(incident_ids)
    minutes = max(round(group_interval / 60), 1)
    shown = ", ".join(str(p) for p in pids[:SHOWN_PIDS])
    if len(pids) > SHOWN_PIDS:
        shown += f" and {len(pids) - SHOWN_PIDS} more"
    v = last.victim
    if v is not None:
        where = f" in {last.where}" if last.where and last.where != "the host" else ""
        title = (
            f"{n} more OOM kill{'s' if n != 1 else ''} of {v.comm}{where} on "
            f"{last.host} in the last {minutes} min"
        )
        if shown:
            title += f" (pids {shown})"
        if unplaced_count:
            which = "them" if unplaced_count == n else f"{unplaced_count} of them"
            title += f"; the kernel printed no cgroup for {which}: its reports were rate-limited"
    else:
        title = f"{n} more: {last.title} (in the last {minutes} min)"
    return replace(
        last,
        id=f"followup:{receiver}:{incident_ids[0]}",
        key=key or last.key,
        title=title,
        followup=FollowUp(n, tuple(pids), tuple(incident_ids), group_interval, unplaced_count),
    )
