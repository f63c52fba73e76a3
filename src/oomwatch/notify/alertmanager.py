"""Prometheus Alertmanager API v2: `POST /api/v2/alerts`, `endsAt` to resolve.

A kill is an event: it is sent with an `endsAt` a while after it, so Alertmanager
lets it expire by itself. A firing condition is re-sent every repeat interval with an
`endsAt` past the next re-send, so it stays active while the agent lives and ends by
itself if the agent dies. A resolved condition is sent with `endsAt` = now.
"""

from __future__ import annotations

import datetime as dt

import httpx

from oomwatch.incidents import Incident
from oomwatch.notify.http import post
from oomwatch.notify.render import details, truncate

EVENT_TTL = dt.timedelta(minutes=15)
ALERTNAMES = {
    "oom_kill": "OOMKill",
    "memory_low": "MemoryLow",
    "swap_low": "SwapLow",
    "memory_pressure": "MemoryPressure",
    "cgroup_near_limit": "CgroupNearMemoryLimit",
    "log_gap": "KernelLogGap",
    "unseen_kills": "OOMKillsNotLogged",
}


def alert(inc: Incident, now: dt.datetime, hold_s: float = 4 * 3600 + 300) -> dict[str, object]:
    """One alert of the v2 API."""
    b = inc.body
    v = b.get("victim") or {}
    c = b.get("container") or {}
    labels = {
        "alertname": ALERTNAMES.get(inc.kind, "OOMWatch"),
        "severity": inc.severity,
        "host": str(b.get("host") or ""),
        "kind": inc.kind,
        "oomwatch_key": inc.key,
    }
    optional = {
        "comm": v.get("comm"),
        "cgroup": b.get("task_memcg") or b.get("subject"),
        "container_id": c.get("id"),
        "pod_uid": c.get("pod_uid"),
    }
    labels.update({k: str(x) for k, x in optional.items() if x})
    why, advice = details(inc)
    started = dt.datetime.fromtimestamp(float(b.get("detected_at") or now.timestamp()), tz=dt.UTC)
    if inc.status == "resolved":
        ends: dt.datetime | None = now
    elif inc.kind in ("oom_kill", "log_gap", "unseen_kills"):
        ends = started + EVENT_TTL
    else:  # a firing condition: active until the next re-send is due, and a margin
        ends = now + dt.timedelta(seconds=hold_s)
    out: dict[str, object] = {
        "labels": labels,
        "annotations": {
            "summary": truncate(inc.title, 1000),
            "description": truncate(why, 4000),
            "what_to_do": truncate(" ".join(advice), 2000),
        },
        "startsAt": started.isoformat(),
    }
    if ends is not None:
        out["endsAt"] = ends.isoformat()
    return out


class AlertmanagerNotifier:
    """Posts alerts to one Alertmanager."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        repeat_interval: float = 4 * 3600,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        # a firing condition is re-sent every repeat_interval; it must outlive the gap
        self.hold_s = repeat_interval + 300
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.client = client or httpx.AsyncClient(timeout=10.0)

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """POST a one-alert list."""
        now = dt.datetime.now(dt.UTC)
        await post(self.client, self.url, "alertmanager", json=[alert(incident, now, self.hold_s)])

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
