"""Opsgenie Alert API: create with the incident key as `alias`, close it on resolve.

Limits (https://docs.opsgenie.com/docs/alert-api): message 130 characters, alias
512, description 15,000, a details value 8,000.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from oomwatch import __version__
from oomwatch.incidents import Incident
from oomwatch.notify.http import post
from oomwatch.notify.render import facts, plain_text, truncate

PRIORITY = {"critical": "P1", "warning": "P3", "info": "P5"}


class OpsgenieNotifier:
    """Creates and closes alerts."""

    def __init__(
        self, name: str, api_key: str, url: str, client: httpx.AsyncClient | None = None
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.base = url.rstrip("/")
        self.client = client or httpx.AsyncClient(timeout=10.0)

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Create the alert, or close it when the incident resolved."""
        headers = {
            "Authorization": f"GenieKey {self.api_key}",
            "User-Agent": f"oomwatch/{__version__}",
        }
        if incident.status == "resolved":
            url = f"{self.base}/v2/alerts/{quote(incident.key, safe='')}/close"
            body: dict[str, object] = {"source": "oomwatch", "note": truncate(incident.title, 1000)}
            params = {"identifierType": "alias"}
        else:
            url = f"{self.base}/v2/alerts"
            body = {
                "message": truncate(incident.title, 130),
                "alias": incident.key,
                "description": truncate(plain_text(incident), 15000),
                "tags": ["oomwatch", incident.kind],
                "details": {k: truncate(v, 8000) for k, v in facts(incident)},
                "entity": truncate(str(incident.body.get("host") or ""), 512),
                "source": "oomwatch",
                "priority": PRIORITY.get(incident.severity, "P3"),
            }
            params = {}
        await post(self.client, url, "opsgenie", json=body, headers=headers, params=params)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
