"""What every notifier's config shares: strict types, secrets from files, checked URLs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from oomwatch.errors import ConfigError
from oomwatch.strict import After

if TYPE_CHECKING:
    from oomwatch.notify import Notifier
    from oomwatch.notify.slack import ThreadStore
    from oomwatch.settings import Settings


def check_url(url: str) -> str:
    """An http(s) URL with a host and a valid port, or a ValueError saying what is wrong."""
    import httpx

    try:
        u = httpx.URL(url)
        port = u.port
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise ValueError(f"not a valid URL: {str(e).splitlines()[0][:80]}") from None
    if not u.scheme:
        raise ValueError("no scheme: write http:// or https:// before the host")
    if u.scheme not in ("http", "https"):
        raise ValueError(f"the scheme must be http or https, not {u.scheme!r}")
    if not u.host:
        raise ValueError("the URL has no host")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return url


HttpUrl = Annotated[str, After(check_url)]


def read_secret(value: str | None, file: Path | None, what: str) -> str | None:
    """A secret from its value, else from its file (a mounted Kubernetes Secret)."""
    if value:
        return value
    if file is None:
        return None
    try:
        return file.read_text().strip() or None
    except OSError as e:
        raise ConfigError(f"{what}_file: cannot read {file}: {e.strerror}") from e


def need(receiver: str, value: str | None, what: str) -> str:
    """A required value, or a ConfigError naming the receiver and the setting."""
    if not value:
        raise ConfigError(f"receiver {receiver!r}: {what} is empty")
    return value


def mask(text: str | None) -> str | None:
    """A secret as check-config prints it: never more than its first four characters."""
    if not text:
        return text
    return text[:4] + "…" if len(text) > 12 else "…"


def masked_url(url: str | None) -> str:
    """A URL as check-config prints it: scheme and host, the rest redacted."""
    from oomwatch.notify import redact_url

    return redact_url(url) if url else "(none)"


@dataclass(frozen=True, slots=True)
class Context:
    """What a notifier may need beyond its own config."""

    threads: ThreadStore | None = None
    repeat_interval: float = 4 * 3600.0
    node: str | None = None
    log_format: str = "text"  # "json": the console prints incidents as JSON objects too


@dataclass(frozen=True, slots=True)
class NotifierKind:
    """One kind of receiver."""

    name: str
    config: Any  # the type of the value under `name` in a receiver
    build: Callable[[str, Any, Context], Notifier]
    describe: Callable[[Any], str]
    from_settings: Callable[[Settings], Any] | None = None  # the environment's receiver
    min_gap_s: float = 0.0  # at most one message this often (Slack: one a second)
    pages: bool = False  # wakes a person: drills skip it unless asked to page
    local: bool = False  # shows every incident here (the console): no grouping, no result lines
