"""The webhook notifier: POSTs the versioned JSON payload (docs/webhook.md).

Options: extra headers, an HMAC-SHA256 signature over timestamp and body
(`X-Oomwatch-Signature: t=<unix time>,v1=<hex>`), and a sandboxed Jinja2 body
template for tools that want their own shape (it sees `payload`; autoescaping is
off, so use `|tojson` for values in JSON).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from oomwatch import __version__
from oomwatch.errors import UsageError
from oomwatch.incidents import Incident
from oomwatch.notify import NotifyError
from oomwatch.notify.http import post


class WebhookNotifier:
    """One POST per delivery, with an idempotency key that a retry repeats."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        hmac_secret: str | None = None,
        template: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.headers = dict(headers or {})
        self.secret = hmac_secret.encode() if hmac_secret else None
        self.template: Any = None
        if template is not None:
            from jinja2 import TemplateSyntaxError
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            try:
                self.template = ImmutableSandboxedEnvironment().from_string(template)
            except TemplateSyntaxError as e:
                raise UsageError(f"receiver {name!r}: bad template: {e}") from None
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    def body(self, incident: Incident) -> tuple[bytes, str]:
        """The request body and its content type."""
        payload = incident.payload()
        if self.template is None:
            return json.dumps(payload, ensure_ascii=False).encode(), "application/json"
        from jinja2 import TemplateError

        try:
            text = self.template.render(payload=payload)
        except TemplateError as e:
            raise NotifyError(
                f"webhook template failed: {e}", retryable=False, reason="client_error"
            ) from None
        try:
            json.loads(text)
            kind = "application/json"
        except ValueError:
            kind = "text/plain; charset=utf-8"
        return text.encode(), kind

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """POST the payload; raise NotifyError with the retry verdict on failure."""
        body, kind = self.body(incident)
        headers = {
            **self.headers,
            "Content-Type": kind,
            "User-Agent": f"oomwatch/{__version__}",
            "Idempotency-Key": delivery_key,
        }
        if self.secret is not None:
            ts = str(int(time.time()))
            mac = hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers["X-Oomwatch-Signature"] = f"t={ts},v1={mac}"
        await post(self.client, self.url, "webhook", content=body, headers=headers)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
