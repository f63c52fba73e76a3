"""HTTP for notifiers: the one status classification, Retry-After, and httpx translated."""

from __future__ import annotations

import email.utils
import errno
import functools
import os
import re
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.notify.transport import AsyncioTransport

ERROR_BODY_CHARS = 200  # what of a receiver's error body goes into logs and the store
TIMEOUT_S = 10.0


def status_error(
    code: int, what: str, *, body: str = "", retry_after: str | None = None
) -> NotifyError | None:
    """None for 2xx; else the NotifyError a status means: 429, 408 and 5xx retry, other 4xx not."""
    if 200 <= code < 300:
        return None
    detail = f"{what}: HTTP {code} {_phrase(code)}".rstrip() + (f": {short(body)}" if body else "")
    wait = parse_retry_after(retry_after)
    if code == 429:
        return NotifyError(
            f"{what}: HTTP 429 rate limited",
            retryable=True,
            reason=FailureReason.RATE_LIMITED,
            retry_after=wait,
        )
    if code == 408 or code >= 500:
        return NotifyError(
            detail, retryable=True, reason=FailureReason.SERVER_ERROR, retry_after=wait
        )
    if code in (401, 403):
        return NotifyError(detail, retryable=False, reason=FailureReason.AUTH_ERROR)
    return NotifyError(detail, retryable=False, reason=FailureReason.CLIENT_ERROR)


def short(text: str) -> str:
    """A receiver's answer, on one line and bounded, for logs and the store (HTML as text)."""
    if "<html" in text[:200].lower() or "<!doctype" in text[:200].lower():
        text = re.sub(r"<(script|style)\b.*?</\1>|<[^>]{0,500}>", " ", text, flags=re.S | re.I)
    one = " ".join(text.split())
    return one[:ERROR_BODY_CHARS] + ("…" if len(one) > ERROR_BODY_CHARS else "")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value: delta-seconds or an HTTP date."""
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
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def header(headers: Mapping[str, Any], name: str) -> str | None:
    """A header's value whatever the case of its name (lists, as urllib gives, take the first)."""
    for k, v in headers.items():
        if k.lower() == name.lower():
            return str(v[0] if isinstance(v, list) and v else v)
    return None


def client(timeout_s: float = TIMEOUT_S, url: str | None = None) -> httpx.AsyncClient:
    """A long-lived client for one receiver (keep-alive, bounded timeouts), ready to send.

    Every client shares one verifying TLS context; a receiver at an `http://` `url`
    gets one with no CA bundle (it never negotiates TLS: redirects are not followed).
    Its connections are asyncio's (`transport.py`), unless a proxy is set in the
    environment.
    """
    # kills are rare: httpx's 5 s keep-alive would make nearly every delivery connect
    # again; 55 s stays under the idle timeouts of common servers and balancers (60 s)
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=2, keepalive_expiry=55)
    tls = tls_for(url)
    warm()
    if proxied():
        # httpx's own transport reads HTTP(S)_PROXY and NO_PROXY, as the chart documents
        return httpx.AsyncClient(timeout=timeout_s, limits=limits, verify=tls)
    return httpx.AsyncClient(timeout=timeout_s, transport=AsyncioTransport(tls, limits))


def proxied() -> bool:
    """Whether the environment names a proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, any case)."""
    return any(
        value and name.lower() in ("http_proxy", "https_proxy", "all_proxy")
        for name, value in os.environ.items()
    )


def tls_for(url: str | None) -> ssl.SSLContext:
    """The TLS context of a client for `url`: none trusted for plain HTTP, else the shared one."""
    return _no_tls() if url is not None and url[:7].lower() == "http://" else _tls()


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's own default context, made once: each loads the CA bundle (0.7 MB of memory)."""
    return httpx.create_ssl_context()


@functools.cache
def _no_tls() -> ssl.SSLContext:
    """A context that trusts no certificate: for clients that only speak plain HTTP."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def warm() -> None:
    """Load now what httpcore loads on its first request (anyio: ~40 ms, a kill's wait)."""
    import anyio._backends._asyncio
    import anyio.lowlevel
    import anyio.streams.memory
    import anyio.streams.stapled
    import anyio.streams.tls
    import anyio.to_thread  # noqa: F401


async def post(
    client: httpx.AsyncClient, url: str | httpx.URL, what: str, **kwargs: Any
) -> httpx.Response:
    """One POST, its failures translated into NotifyError (the URL redacted)."""
    try:
        resp = await client.post(url, **kwargs)
    except httpx.TimeoutException:
        t = client.timeout.read or client.timeout.connect
        label = _label(what, url)
        raise NotifyError(
            f"{label}: no answer in {t:g} s" if t else f"{label}: timed out",
            retryable=True,
            reason=FailureReason.TIMEOUT,
        ) from None
    except httpx.HTTPError as e:
        raise NotifyError(
            f"{_label(what, url)}: {transport_words(e, str(url))}",
            retryable=True,
            reason=FailureReason.CONNECTION,
        ) from None
    if not 200 <= resp.status_code < 300:  # the label and the body's text: failures only
        err = status_error(
            resp.status_code,
            _label(what, url),
            body=resp.text,
            retry_after=resp.headers.get("retry-after"),
        )
        if err is not None:
            raise err
    return resp


def _label(what: str, url: str | httpx.URL) -> str:
    from oomwatch.notify import redact_url

    return f"{what} {redact_url(str(url))}"


def _chain(e: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """An error and what caused it, through exception groups (anyio's connect attempts)."""
    if depth > 8:
        return
    yield e
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            yield from _chain(inner, depth + 1)
    nxt = e.__cause__ or e.__context__
    if nxt is not None:
        yield from _chain(nxt, depth + 1)


def _phrase(code: int) -> str:
    import http

    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return ""


def transport_words(e: BaseException, url: str) -> str:
    """What went wrong below HTTP, in words: refused, unknown host, TLS, reset."""
    u = httpx.URL(url)
    where = f"{u.host}:{u.port or (443 if u.scheme == 'https' else 80)}"
    causes = list(_chain(e))
    codes = {c.errno for c in causes if isinstance(c, OSError)}
    text = " ".join(str(c) for c in causes).lower()
    if errno.ECONNREFUSED in codes or "refused" in text:
        return f"connection refused by {where}"
    if "name or service not known" in text or "resolution" in text or "nodename" in text:
        return f"cannot resolve the host {u.host}"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return f"TLS failed with {where}: {short(str(e))}"
    if "reset" in text or "disconnect" in text or "closed" in text:
        return f"{where} closed the connection"
    if "unreachable" in text:
        return f"{where} is unreachable"
    return f"{type(e).__name__} talking to {where}: {short(str(e)) or 'no detail'}"
