"""Slack by incoming webhook: one message per delivery, no threads, no lookup after a crash."""

from __future__ import annotations

import asyncio

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.model import Incident
from oomwatch.notify import redact_url
from oomwatch.notify.http import header, status_error, transport_words
from oomwatch.notify.slack_blocks import blocks


class SlackWebhookNotifier:
    """An incoming webhook: one message per delivery, no threads."""

    def __init__(self, name: str, url: str) -> None:
        from slack_sdk.webhook import WebhookClient

        self.name = name
        self.url = url
        self.client = WebhookClient(url, timeout=10, retry_handlers=[])

    async def send(self, incident: Incident, _delivery_key: str) -> None:
        """POST the message."""
        await asyncio.to_thread(self._send, incident)

    def _send(self, inc: Incident) -> None:
        text, bl = blocks(inc)
        what = f"slack webhook {redact_url(self.url)}"
        try:
            resp = self.client.send(text=text, blocks=bl)
        except TimeoutError:
            raise NotifyError(
                f"{what}: timed out", retryable=True, reason=FailureReason.TIMEOUT
            ) from None
        except OSError as e:
            raise NotifyError(
                f"{what}: {transport_words(e, self.url)}",
                retryable=True,
                reason=FailureReason.CONNECTION,
            ) from None
        err = status_error(
            resp.status_code,
            what,
            body=str(resp.body),
            retry_after=header(resp.headers or {}, "Retry-After"),
        )
        if err is not None:
            raise err

    async def aclose(self) -> None:
        """Nothing to release."""
