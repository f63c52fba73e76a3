"""The webhook notifier: POSTs the versioned JSON payload (docs/webhook.md).

Options: extra headers, an HMAC-SHA256 signature over timestamp and body
(`X-Oomwatch-Signature: t=<unix time>,v1=<hex>`), and a sandboxed Jinja2 body
template for tools that want their own shape (it sees `payload`; autoescaping is
off, so use `|tojson` for values in JSON).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from annotated_types import Ge

from oomwatch import __version__
from oomwatch.errors import ConfigError, FailureReason, NotifyError
from oomwatch.model import Incident
from oomwatch.notify.common import (
    Context,
    HttpUrl,
    NotifierKind,
    masked_url,
    need,
    read_secret,
)
from oomwatch.notify.http import client as http_client
from oomwatch.notify.http import post
from oomwatch.render.escape import truncate
from oomwatch.render.fit import PAYLOAD_BYTES, payload, payload_bytes
from oomwatch.strict import Strict, checked

if TYPE_CHECKING:
    from oomwatch.settings import Settings


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
        max_bytes: int = PAYLOAD_BYTES,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.url = url
        self.target: httpx.URL | str = url
        with contextlib.suppress(httpx.InvalidURL):  # else each POST says what is wrong
            self.target = httpx.URL(url)  # parsed once, not at every POST
        self.headers = dict(headers or {})
        self.secret = hmac_secret.encode() if hmac_secret else None
        self.template: Any = None
        if template is not None:
            from jinja2 import TemplateSyntaxError
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            try:
                self.template = ImmutableSandboxedEnvironment().from_string(template)
            except TemplateSyntaxError as e:
                raise ConfigError(f"receiver {name!r}: bad template: {e}") from None
        self.client = client or http_client(timeout_s, url)

    def body(self, incident: Incident) -> tuple[bytes, str]:
        """The request body and its content type, at most `max_bytes`."""
        limit = self.max_bytes
        if self.template is None:
            return payload_bytes(incident, limit), "application/json"
        data = payload(incident, limit)
        for _ in range(3):
            text = self._render(data)
            raw = text.encode()
            if len(raw) <= self.max_bytes:
                break
            # the template repeats parts of the payload: give it a smaller one
            limit = max(limit * self.max_bytes // len(raw) // 2, 1024)
            data = payload(incident, limit)
        else:
            raw = truncate(text, self.max_bytes // 4).encode()
        try:
            json.loads(raw)
            kind = "application/json"
        except ValueError:
            kind = "text/plain; charset=utf-8"
        return raw, kind

    def _render(self, data: dict[str, Any]) -> str:
        try:
            return str(self.template.render(payload=data))
        except Exception as e:  # noqa: BLE001 - a user's template can raise anything (1/0)
            raise NotifyError(
                f"webhook template failed: {type(e).__name__}: {str(e)[:200]}",
                retryable=False,
                reason=FailureReason.CLIENT_ERROR,
            ) from None

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
        await post(self.client, self.target, "webhook", content=body, headers=headers)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


@dataclass(frozen=True, kw_only=True)
class WebhookConfig(Strict):
    """A generic webhook (docs/webhook.md)."""

    url: HttpUrl | None = None
    url_file: Path | None = None
    hmac_secret: str | None = None
    hmac_secret_file: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    max_bytes: Annotated[int, Ge(4096)] = PAYLOAD_BYTES


def _build(name: str, w: WebhookConfig, _ctx: Context) -> WebhookNotifier:
    return WebhookNotifier(
        need(name, read_secret(w.url, w.url_file, "url"), "url"),
        name=name,
        headers=w.headers,
        hmac_secret=read_secret(w.hmac_secret, w.hmac_secret_file, "hmac_secret"),
        template=w.template,
        max_bytes=w.max_bytes,
    )


def _describe(c: WebhookConfig) -> str:
    url = masked_url(c.url) if c.url else f"from {c.url_file}"
    return f"({url}{', signed' if c.hmac_secret or c.hmac_secret_file else ''})"


def _from_settings(s: Settings) -> WebhookConfig | None:
    if s.webhook_url or s.webhook_url_file:
        return checked(WebhookConfig, url=s.webhook_url, url_file=s.webhook_url_file)
    return None


KIND = NotifierKind("webhook", WebhookConfig, _build, _describe, _from_settings)
