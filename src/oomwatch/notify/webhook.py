"""The webhook notifier: POSTs the versioned JSON payload (docs/webhook.md)."""

from __future__ import annotations

import httpx

from oomwatch import __version__
from oomwatch.incidents import Incident
from oomwatch.notify import NotifyError, redact_url
from oomwatch.notify.http import classify


class WebhookNotifier:
    """One POST per delivery, with an idempotency key that a retry repeats."""

    name = "webhook"

    def __init__(
        self, url: str, *, timeout_s: float = 10.0, client: httpx.AsyncClient | None = None
    ) -> None:
        self.url = url
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """POST the payload; raise NotifyError with the retry verdict on failure."""
        headers = {"User-Agent": f"oomwatch/{__version__}", "Idempotency-Key": delivery_key}
        try:
            resp = await self.client.post(self.url, json=incident.payload(), headers=headers)
        except httpx.TimeoutException as e:
            raise NotifyError(
                f"webhook {redact_url(self.url)}: timed out", retryable=True, reason="timeout"
            ) from e
        except httpx.HTTPError as e:
            raise NotifyError(
                f"webhook {redact_url(self.url)}: {type(e).__name__}",
                retryable=True,
                reason="connection",
            ) from e
        classify(resp, f"webhook {redact_url(self.url)}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
