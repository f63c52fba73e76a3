"""The JSON Lines notifier: one webhook-shaped JSON object per incident, appended to a file.

A line is at most 256 KiB, like the webhook's body (`render/fit.py`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.model import Incident
from oomwatch.notify.common import Context, NotifierKind
from oomwatch.render.fit import payload

if TYPE_CHECKING:
    from oomwatch.settings import Settings


class JsonlNotifier:
    """Appends payloads to a file (flushed and synced, so a crash loses no line)."""

    def __init__(self, path: Path, *, name: str = "jsonl") -> None:
        self.name = name
        self.path = path

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Append one line with the payload and its delivery key."""
        line = json.dumps(payload(incident, delivery_id=delivery_key), ensure_ascii=False)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise NotifyError(
                f"cannot write {self.path}: {e.strerror}", retryable=True, reason=FailureReason.IO
            ) from e

    async def aclose(self) -> None:
        """Nothing to release."""


def _build(name: str, path: Path, _ctx: Context) -> JsonlNotifier:
    return JsonlNotifier(path, name=name)


def _from_settings(s: Settings) -> Path | None:
    return s.jsonl_path


KIND = NotifierKind("jsonl", Path, _build, lambda p: f"({p})", _from_settings)
