"""Notifiers: small and dumb. Each renders an incident and makes exactly one attempt."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from oomwatch.model import Incident


class Notifier(Protocol):
    """A receiver's sender: one external side effect per `send`, or a NotifyError."""

    name: str

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Deliver once, or raise NotifyError."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class Recovers(Protocol):
    """A notifier that can look up whether an attempt a crash cut off reached the receiver."""

    async def recover(self, incident: Incident, delivery_key: str, since: float) -> bool:
        """Whether `delivery_key` arrived since `since` (then its bookkeeping is done too)."""
        ...

    async def caveat(self) -> str | None:
        """What keeps `recover` from working here (a missing scope), asked of the receiver."""
        ...


def redact_url(url: str) -> str:
    """A URL safe for logs: scheme and host only (paths and queries often hold tokens)."""
    import httpx

    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    return f"{u.scheme}://{u.host}{':' + str(u.port) if u.port else ''}/<redacted>"
