"""Prometheus Alertmanager API v2: `POST /api/v2/alerts`, `endsAt` to resolve.

A kill is an event: it is sent with an `endsAt` a while after it, so Alertmanager
lets it expire by itself. A firing condition is re-sent every repeat interval with an
`endsAt` past the next re-send, so it stays active while the agent lives and ends by
itself if the agent dies. A resolved condition is sent with `endsAt` = now.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import httpx
from annotated_types import Ge, Le

from oomwatch.model import Incident
from oomwatch.notify.common import Context, HttpUrl, NotifierKind, masked_url
from oomwatch.notify.facts import details, truncate
from oomwatch.notify.http import client as http_client
from oomwatch.notify.http import post
from oomwatch.strict import Strict, checked

if TYPE_CHECKING:
    from oomwatch.settings import Settings

EVENT_TTL = dt.timedelta(minutes=15)
# alert names that are not the kind in CamelCase
ALERTNAMES = {
    "oom_kill": "OOMKill",
    "cgroup_near_limit": "CgroupNearMemoryLimit",
    "log_gap": "KernelLogGap",
    "unseen_kills": "OOMKillsNotLogged",
}


MAX_LABEL = 1024  # a label value is an identity, not a document: a cgroup path fits


def alertname(kind: str) -> str:
    """`OOMKill`, `MemoryLow`, ...: a kind's alert name."""
    return ALERTNAMES.get(kind) or "".join(w.capitalize() for w in kind.split("_"))


def alert(
    inc: Incident,
    now: dt.datetime,
    hold_s: float = 4 * 3600 + 300,
    event_ttl: dt.timedelta = EVENT_TTL,
) -> dict[str, object]:
    """One alert of the v2 API; a kill's ends `event_ttl` after it was detected."""
    labels = {
        "alertname": alertname(inc.kind),
        "severity": inc.severity,
        "host": inc.host,
        "kind": inc.kind,
        "oomwatch_key": inc.key,
    }
    have = inc.labels()
    k = inc.kill
    pod = k.pod if k else None
    optional = {
        # the workload's labels, as /metrics names them: what a route groups on across nodes
        "namespace": pod.namespace if pod else None,
        "pod": pod.pod if pod else None,
        "container": pod.container if pod else None,
        "owner_kind": pod.owner_kind if pod else None,
        "owner": pod.owner_name if pod else None,
        "comm": have.get("comm"),
        "cgroup": have.get("cgroup"),
        "container_id": k.kill.container.id if k and k.kill.container else None,
        "pod_uid": k.kill.container.pod_uid if k and k.kill.container else None,
    }
    labels.update({name: truncate(v, MAX_LABEL) for name, v in optional.items() if v})
    why, advice = details(inc)
    started = dt.datetime.fromtimestamp(inc.detected_at, tz=dt.UTC)
    if inc.status == "resolved":
        ends = now
    elif inc.category == "event":
        ends = started + event_ttl
    else:  # a firing condition: active until the next re-send is due, and a margin
        ends = now + dt.timedelta(seconds=hold_s)
    return {
        "labels": labels,
        "annotations": {
            "summary": truncate(inc.title, 1000),
            "description": truncate(why, 4000),
            "what_to_do": truncate(" ".join(advice), 2000),
        },
        "startsAt": started.isoformat(),
        "endsAt": ends.isoformat(),
    }


class AlertmanagerNotifier:
    """Posts alerts to one Alertmanager."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        repeat_interval: float = 4 * 3600,
        kill_alert_ttl_s: float = EVENT_TTL.total_seconds(),
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.event_ttl = dt.timedelta(seconds=kill_alert_ttl_s)
        # a firing condition is re-sent every repeat_interval; it must outlive the gap
        self.hold_s = repeat_interval + 300
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.client = client or http_client(url=url)

    async def send(self, incident: Incident, _delivery_key: str) -> None:
        """POST a one-alert list."""
        now = dt.datetime.now(dt.UTC)
        await post(
            self.client,
            self.url,
            "alertmanager",
            json=[alert(incident, now, self.hold_s, self.event_ttl)],
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


@dataclass(frozen=True, kw_only=True)
class AlertmanagerConfig(Strict):
    """Prometheus Alertmanager, API v2."""

    url: HttpUrl
    # how long a kill's alert stays active before Alertmanager resolves it by itself
    kill_alert_ttl_s: Annotated[float, Ge(1), Le(7 * 86400)] = EVENT_TTL.total_seconds()


def _build(name: str, c: AlertmanagerConfig, ctx: Context) -> AlertmanagerNotifier:
    return AlertmanagerNotifier(
        name, c.url, repeat_interval=ctx.repeat_interval, kill_alert_ttl_s=c.kill_alert_ttl_s
    )


def _describe(c: AlertmanagerConfig) -> str:
    return f"({masked_url(c.url)})"


def _from_settings(s: Settings) -> AlertmanagerConfig | None:
    return checked(AlertmanagerConfig, url=s.alertmanager_url) if s.alertmanager_url else None


KIND = NotifierKind("alertmanager", AlertmanagerConfig, _build, _describe, _from_settings)
