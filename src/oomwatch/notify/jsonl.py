"""The JSON Lines notifier: one webhook-shaped JSON object per incident, appended to a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from oomwatch.incidents import Incident
from oomwatch.notify import NotifyError


class JsonlNotifier:
    """Appends payloads to a file (flushed and synced, so a crash loses no line)."""

    def __init__(self, path: Path, *, name: str = "jsonl") -> None:
        self.name = name
        self.path = path

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Append one line with the payload and its delivery key."""
        line = (
            json.dumps({**incident.payload(), "delivery_id": delivery_key}, ensure_ascii=False)
            + "\n"
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise NotifyError(
                f"cannot write {self.path}: {e.strerror}", retryable=True, reason="io"
            ) from e

    async def aclose(self) -> None:
        """Nothing to release."""
