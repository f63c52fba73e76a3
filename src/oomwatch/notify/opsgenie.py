"""Opsgenie Alert API: create with the incident key as `alias`, close it on resolve.

Limits (https://docs.opsgenie.com/docs/alert-api): message 130 characters, alias
512, description 15,000, details 8,000 in total.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from oomwatch import __version__
from oomwatch.model import Incident
from oomwatch.notify.common import (
    Context,
    HttpUrl,
    NotifierKind,
    mask,
    masked_url,
    need,
    read_secret,
)
from oomwatch.notify.facts import facts, plain_text, truncate
from oomwatch.notify.http import client as http_client
from oomwatch.notify.http import post
from oomwatch.strict import Strict, checked

if TYPE_CHECKING:
    from oomwatch.settings import Settings

PRIORITY = {"critical": "P1", "warning": "P3", "info": "P5"}


MAX_DETAILS = 8000  # characters, all keys and values together


def _details(inc: Incident) -> dict[str, str]:
    """The facts as details, the longest values cut until all fit in MAX_DETAILS."""
    out = dict(facts(inc))
    while sum(len(k) + len(v) for k, v in out.items()) > MAX_DETAILS:
        name = max(out, key=lambda k: len(out[k]))
        if len(out[name]) <= 16:
            out.pop(name)
            continue
        out[name] = truncate(out[name], len(out[name]) // 2)
    return out


class OpsgenieNotifier:
    """Creates and closes alerts."""

    def __init__(
        self, name: str, api_key: str, url: str, client: httpx.AsyncClient | None = None
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.base = url.rstrip("/")
        self.client = client or http_client()

    async def send(self, incident: Incident, _delivery_key: str) -> None:
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
                "details": _details(incident),
                "entity": truncate(incident.host, 512),
                "source": "oomwatch",
                "priority": PRIORITY.get(incident.severity, "P3"),
            }
            params = {}
        await post(self.client, url, "opsgenie", json=body, headers=headers, params=params)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


@dataclass(frozen=True, kw_only=True)
class OpsgenieConfig(Strict):
    """Opsgenie Alert API."""

    api_key: str | None = None
    api_key_file: Path | None = None
    url: HttpUrl = "https://api.opsgenie.com"


def _build(name: str, o: OpsgenieConfig, _ctx: Context) -> OpsgenieNotifier:
    return OpsgenieNotifier(
        name, need(name, read_secret(o.api_key, o.api_key_file, "api_key"), "api_key"), o.url
    )


def _describe(c: OpsgenieConfig) -> str:
    return f"(api key {mask(c.api_key) or 'from file'}, {masked_url(c.url)})"


def _from_settings(s: Settings) -> OpsgenieConfig | None:
    if not (s.opsgenie_api_key or s.opsgenie_api_key_file):
        return None
    return checked(
        OpsgenieConfig,
        api_key=s.opsgenie_api_key,
        api_key_file=s.opsgenie_api_key_file,
        **({"url": s.opsgenie_url} if s.opsgenie_url else {}),
    )


KIND = NotifierKind("opsgenie", OpsgenieConfig, _build, _describe, _from_settings, pages=True)
