"""Silences: matchers with an end time, kept in a JSON file the agent reloads on change.

A silenced incident is still stored (and shown by the API); it is only not sent.
`oomwatch silence add|list|expire` edits the file; writes are atomic (rename).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oomwatch.errors import UsageError
from oomwatch.receivers import Matcher


@dataclass(frozen=True, slots=True)
class Silence:
    """Incidents whose labels match every matcher are not sent until `ends_at`."""

    id: str
    matchers: tuple[Matcher, ...]
    ends_at: float
    created_at: float
    comment: str = ""

    def active(self, now: float) -> bool:
        """Whether it still silences."""
        return now < self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether it covers an incident with these labels."""
        return all(m.matches(labels) for m in self.matchers)

    def to_json(self) -> dict[str, Any]:
        """The file's form."""
        return {
            "id": self.id,
            "matchers": [f"{m.label}{m.op}{m.value}" for m in self.matchers],
            "ends_at": self.ends_at,
            "created_at": self.created_at,
            "comment": self.comment,
        }


def load(path: Path) -> list[Silence]:
    """The silences in the file (none when it does not exist); a bad file is a UsageError."""
    try:
        raw = json.loads(path.read_text() or "[]")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise UsageError(f"cannot read silences {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise UsageError(
            f"silences {path} is not UTF-8: byte 0x{e.object[e.start]:02x} at offset {e.start}"
        ) from None
    except ValueError as e:
        raise UsageError(f"silences {path} is not valid JSON: {e}") from None
    if not isinstance(raw, list):
        raise UsageError(f"silences {path}: expected a list")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(
                Silence(
                    id=str(item["id"]),
                    matchers=tuple(Matcher.parse(m) for m in item["matchers"]),
                    ends_at=float(item["ends_at"]),
                    created_at=float(item.get("created_at", 0.0)),
                    comment=str(item.get("comment", "")),
                )
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(f"silences {path}: entry {i}: {e}") from None
    return out


def save(path: Path, silences: list[Silence]) -> None:
    """Write atomically: the agent never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([s.to_json() for s in silences], indent=2) + "\n")
    tmp.replace(path)


def add(
    path: Path, matchers: list[str], duration_s: float, comment: str, now: float | None = None
) -> Silence:
    """Add a silence; it needs at least one matcher (silencing everything is a config job)."""
    if not matchers:
        raise UsageError("a silence needs at least one matcher, for example comm=worker")
    try:
        parsed = tuple(Matcher.parse(m) for m in matchers)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if duration_s <= 0:
        raise UsageError("the duration must be positive, for example 2h")
    now = time.time() if now is None else now
    s = Silence(uuid.uuid4().hex[:8], parsed, now + duration_s, now, comment)
    save(path, [*load(path), s])
    return s


def expire(path: Path, silence_id: str, now: float | None = None) -> Silence:
    """End a silence now."""
    now = time.time() if now is None else now
    silences = load(path)
    found = [s for s in silences if s.id == silence_id]
    if not found:
        raise UsageError(f"no silence {silence_id!r}; `oomwatch silence list` shows them")
    ended = Silence(
        found[0].id,
        found[0].matchers,
        min(found[0].ends_at, now),
        found[0].created_at,
        found[0].comment,
    )
    save(path, [ended if s.id == silence_id else s for s in silences])
    return ended


def silencing(silences: list[Silence], labels: dict[str, str], now: float) -> Silence | None:
    """The active silence that covers these labels, if any."""
    return next((s for s in silences if s.active(now) and s.matches(labels)), None)
