"""No secret in the log: configured secret values, URL credentials and token shapes removed.

Every record the agent logs (its own and the libraries') passes through
`RedactFilter` on the log handler, so a receiver's error text, an exception
message or a library's request line cannot carry a token to stderr or journald.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "<redacted>"
MIN_SECRET_CHARS = 6  # shorter values ("on", a port) would blank ordinary words
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
# Slack tokens and app tokens, Slack webhook paths, and Authorization values
_TOKEN = re.compile(
    r"\bxox[a-z]-[A-Za-z0-9-]{6,}|\bxapp-[A-Za-z0-9-]{6,}"
    r"|(?<=hooks\.slack\.com/services/)[^\s\"'<>]+"
    r"|(?<=Bearer )[^\s\"'<>]+|(?<=Basic )[A-Za-z0-9+/=]{8,}|(?<=GenieKey )[^\s\"'<>]+"
)
_SECRET_NAME = re.compile(r"token|key|password|secret|auth", re.I)
_known: set[str] = set()


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """The text with every known secret, URL credential, query value and token masked."""
    for s in sorted(_known if secrets is None else set(secrets), key=len, reverse=True):
        text = text.replace(s, MASK)
    text = _URL.sub(lambda m: _redact_url(m.group()), text)
    return _TOKEN.sub(MASK, text)


def _redact_url(url: str) -> str:
    try:
        u = urlsplit(url)
        netloc = u.netloc
    except ValueError:
        return MASK
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{k}={MASK}" if sep else k for k, sep, _ in (p.partition("=") for p in u.query.split("&"))
    )
    return urlunsplit((u.scheme, netloc, u.path, query if u.query else "", u.fragment))


def remember(values: Iterable[str | None]) -> None:
    """Secret values to mask in every later log line (tokens, keys, passwords, webhook URLs)."""
    for v in values:
        if v and len(v.strip()) >= MIN_SECRET_CHARS:
            _known.add(v.strip())


def secrets_of(config: object) -> list[str]:
    """The secret-looking values of the settings or a config, and of the files they name."""
    out: list[str] = []

    def walk(value: Any, name: str) -> None:
        field = name.rpartition(".")[2]
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), f"{name}.{f.name}")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{name}.{k}")
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, name)
        elif (
            isinstance(value, Path)
            and field.endswith("_file")
            and (_SECRET_NAME.search(field) or "hook" in name)
        ):
            try:
                text = value.read_text(errors="replace").strip()
            except OSError:
                return  # reported, naming the setting, where the file is used
            walk(text, name.removesuffix("_file"))
        elif isinstance(value, str) and "://" in value:
            # a webhook's whole URL is its secret; elsewhere only credentials and queries
            u = urlsplit(value)
            out.extend(x for x in (u.password, *_query_values(u.query)) if x)
            if "hook" in name:  # and where a receiver echoes only the path, the path
                out.extend((value, u.path))
        elif isinstance(value, str) and _SECRET_NAME.search(field):
            out.append(value)

    walk(config, "")
    return out


def _query_values(query: str) -> list[str]:
    return [v for _, _, v in (p.partition("=") for p in query.split("&")) if v]


class RedactFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
            record.exc_info = None
        return True
