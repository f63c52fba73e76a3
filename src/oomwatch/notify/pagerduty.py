"""PagerDuty Events API v2: trigger and resolve, the incident key as `dedup_key`.

Limits (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): summary
1,024 characters; the whole event 512 KB. custom_details carries the facts and the
explanation, not the task table, to stay far below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from oomwatch import __version__
from oomwatch.model import Incident
from oomwatch.model.plain import compact
from oomwatch.notify.common import (
    Context,
    HttpUrl,
    NotifierKind,
    mask,
    masked_url,
    need,
    read_secret,
)
from oomwatch.notify.facts import details, facts, pids, truncate
from oomwatch.notify.http import client as http_client
from oomwatch.notify.http import post
from oomwatch.render.fit import fit
from oomwatch.strict import Strict, checked

if TYPE_CHECKING:
    from oomwatch.settings import Settings

MAX_SUMMARY = 1024
MAX_EVENT_BYTES = 500_000  # the API's 512 KB, with room for its own framing
ROUTING = frozenset({"routing_key", "event_action", "dedup_key", "client"})
SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def event(inc: Incident, routing_key: str) -> dict[str, object]:
    """The Events API v2 body."""
    if inc.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": inc.key}
    why, advice = details(inc)
    v = inc.victim
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": inc.key,
        "client": "oomwatch",
        "payload": {
            "summary": truncate(inc.title, MAX_SUMMARY),
            "source": inc.host or "unknown",
            "severity": SEVERITY.get(inc.severity, "error"),
            "component": (v.comm if v else None) or inc.where,
            "group": inc.where,
            "class": inc.kind,
            "custom_details": {
                **dict(facts(inc)),
                "why": why,
                "what_to_do": advice,
                "incident_id": inc.id,
                "pids": pids(inc),
            },
        },
    }


class PagerDutyNotifier:
    """One POST to the enqueue endpoint per delivery."""

    def __init__(
        self, name: str, routing_key: str, url: str, client: httpx.AsyncClient | None = None
    ) -> None:
        self.name = name
        self.routing_key = routing_key
        self.url = url
        self.client = client or http_client()

    async def send(self, incident: Incident, _delivery_key: str) -> None:
        """Trigger or resolve."""
        await post(
            self.client,
            self.url,
            "pagerduty",
            content=compact(fit(event(incident, self.routing_key), MAX_EVENT_BYTES, keep=ROUTING)),
            headers={"User-Agent": f"oomwatch/{__version__}", "Content-Type": "application/json"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


@dataclass(frozen=True, kw_only=True)
class PagerDutyConfig(Strict):
    """PagerDuty Events API v2."""

    routing_key: str | None = None
    routing_key_file: Path | None = None
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"


def _build(name: str, p: PagerDutyConfig, _ctx: Context) -> PagerDutyNotifier:
    key = need(name, read_secret(p.routing_key, p.routing_key_file, "routing_key"), "routing_key")
    return PagerDutyNotifier(name, key, p.url)


def _describe(c: PagerDutyConfig) -> str:
    return f"(routing key {mask(c.routing_key) or 'from file'}, {masked_url(c.url)})"


def _from_settings(s: Settings) -> PagerDutyConfig | None:
    if not (s.pagerduty_routing_key or s.pagerduty_routing_key_file):
        return None
    return checked(
        PagerDutyConfig,
        routing_key=s.pagerduty_routing_key,
        routing_key_file=s.pagerduty_routing_key_file,
        **({"url": s.pagerduty_url} if s.pagerduty_url else {}),
    )


KIND = NotifierKind("pagerduty", PagerDutyConfig, _build, _describe, _from_settings, pages=True)
