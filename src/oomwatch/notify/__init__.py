"""Notifiers: small and dumb. Each renders an incident and makes exactly one attempt."""

from __future__ import annotations

from typing import Protocol

from oomwatch.incidents import Incident


class NotifyError(Exception):
    """A delivery attempt failed; `retryable` says whether trying again can help.

    `reason` labels the failure metric (client_error, server_error, rate_limited,
    timeout, connection); `retry_after` is the server's own wait, in seconds.
    """

    def __init__(
        self, message: str, *, retryable: bool, reason: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason
        self.retry_after = retry_after


class Notifier(Protocol):
    """A receiver's sender."""

    name: str

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Deliver once, or raise NotifyError."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


def redact_url(url: str) -> str:
    """A URL safe for logs: scheme and host only (paths and queries often hold tokens)."""
    import httpx

    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    return f"{u.scheme}://{u.host}{':' + str(u.port) if u.port else ''}/<redacted>"
