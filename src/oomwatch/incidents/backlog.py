"""A quiet first start: kills already in the log when oomwatch first ran become one summary.

A new install reads the whole ring buffer (or the journal since boot); sending each
kill found there as a new alert would page people about last month. On a first
start (no saved cursor for the source) such kills are gathered and go out as one
`kills_before_start` incident per receiver, once the log has been read up to now.
The cursor is held back until that summary is stored, so a crash meanwhile loses
nothing: the next start is a first start again and gathers the same kills.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from oomwatch.model import OomKill

# The summary goes out once no older kill has been read for this long.
QUIET_S = 2.0
KEPT = 200


@dataclass(slots=True)
class Backlog:
    """Kills from before the agent's start, read on its first start."""

    started_uptime: float | None
    started_wall: datetime
    booted: datetime | None
    kills: list[OomKill] = field(default_factory=list)
    count: int = 0
    cursor: tuple[str, str | None] | None = None
    last_at: float = 0.0

    @classmethod
    def now(cls, started_uptime: float | None, booted: datetime | None) -> Backlog:
        """A backlog for an agent starting at this moment."""
        return cls(started_uptime, datetime.now(UTC), booted)

    def older(self, k: OomKill) -> bool:
        """Whether a kill happened before the agent started."""
        if k.uptime_s is not None and self.started_uptime is not None:
            return k.uptime_s <= self.started_uptime
        if k.time is not None:
            t = k.time if k.time.tzinfo is not None else k.time.astimezone()
            return t <= self.started_wall
        return False  # no clock at all: report it as it comes

    def add(self, k: OomKill) -> None:
        """Keep one more older kill (the first KEPT in full, the rest counted)."""
        self.count += 1
        if len(self.kills) < KEPT:
            self.kills.append(k)
        self.last_at = time.monotonic()

    def due(self) -> bool:
        """Whether the older kills are all read: none came for QUIET_S."""
        return self.count > 0 and time.monotonic() - self.last_at >= QUIET_S
