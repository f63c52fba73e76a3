"""HTTP status classification, in one place for every HTTP notifier."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from oomwatch.notify import NotifyError, redact_url


def classify(resp: httpx.Response, what: str) -> None:
    """Return on 2xx; else raise NotifyError: 429, 408 and 5xx retry, other 4xx do not."""
    code = resp.status_code
    if 200 <= code < 300:
        return
    body = resp.text[:200].replace("\n", " ")
    if code == 429:
        raise NotifyError(
            f"{what}: 429 rate limited",
            retryable=True,
            reason="rate_limited",
            retry_after=retry_after(resp),
        )
    if code == 408 or code >= 500:
        raise NotifyError(
            f"{what}: {code} {body}",
            retryable=True,
            reason="server_error",
            retry_after=retry_after(resp),
        )
    raise NotifyError(f"{what}: {code} {body}", retryable=False, reason="client_error")


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


async def post(client: httpx.AsyncClient, url: str, what: str, **kwargs: Any) -> None:
    """One POST, its failures translated into NotifyError (the URL redacted)."""
    label = f"{what} {redact_url(url)}"
    try:
        resp = await client.post(url, **kwargs)
    except httpx.TimeoutException:
        raise NotifyError(f"{label}: timed out", retryable=True, reason="timeout") from None
    except httpx.HTTPError as e:
        raise NotifyError(
            f"{label}: {type(e).__name__}", retryable=True, reason="connection"
        ) from None
    classify(resp, label)
