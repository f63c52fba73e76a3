"""The agent's log: plain lines for a person, or one JSON object per line for a log pipeline."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log each request at INFO (httpx logs the URL, which may hold a
# webhook's secret path) or each file change (watchfiles): only their warnings.
QUIET_LIBRARIES = (
    "httpx",
    "httpcore",
    "urllib3",
    "watchfiles",
    "slack_sdk",
    "lightkube",
    "asyncio",
)


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time, level, logger, message, and any `extra` fields."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        json_ensure_ascii=False,
    )


def configure(fmt: LogFormat = "text", stream: TextIO | None = None, level: str = "info") -> None:
    """Log `level` and above to `stream` (stderr) in `fmt`, secrets masked.

    Libraries log their warnings only, unless the level is debug: then everything,
    through the same masking (their request lines hold URLs).
    """
    from oomwatch.redact import RedactFilter

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactFilter())
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
