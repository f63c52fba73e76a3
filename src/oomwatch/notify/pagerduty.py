"""PagerDuty Events API v2: trigger and resolve, the incident key as `dedup_key`.

Limits (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): summary
1,024 characters; the whole event 512 KB. custom_details carries the facts and the
explanation, not the task table, to stay far below it.
"""

from __future__ import annotations

import httpx

from oomwatch import __version__
from oomwatch.incidents import Incident
from oomwatch.notify.http import post
from oomwatch.notify.render import details, facts, truncate

MAX_SUMMARY = 1024
SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def event(inc: Incident, routing_key: str) -> dict[str, object]:
    """The Events API v2 body."""
    if inc.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": inc.key}
    why, advice = details(inc)
    b = inc.body
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": inc.key,
        "client": "oomwatch",
        "payload": {
            "summary": truncate(inc.title, MAX_SUMMARY),
            "source": str(b.get("host") or "unknown"),
            "severity": SEVERITY.get(inc.severity, "error"),
            "component": (b.get("victim") or {}).get("comm") or b.get("subject"),
            "group": b.get("where"),
            "class": inc.kind,
            "custom_details": {
                **dict(facts(inc)),
                "why": why,
                "what_to_do": advice,
                "incident_id": inc.id,
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
        self.client = client or httpx.AsyncClient(timeout=10.0)

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Trigger or resolve."""
        await post(
            self.client,
            self.url,
            "pagerduty",
            json=event(incident, self.routing_key),
            headers={"User-Agent": f"oomwatch/{__version__}"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
