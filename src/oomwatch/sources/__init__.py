"""Followers of the kernel log: each yields batches of raw lines with a cursor after them.

A follower only produces lines (and counts what it knows was lost); it never
interprets them. The cursor is an opaque string the follower can resume from; the
agent saves it only after what came before it is durably stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Batch:
    """Raw lines in log order, the cursor after the last of them, and records known lost."""

    lines: list[bytes]
    cursor: str | None
    lost: int = 0


class Follower(Protocol):
    """A tiny interface: a name, and batches until cancelled."""

    name: str

    @property
    def cursor(self) -> str | None:
        """Where to resume after what has been read so far."""
        ...

    def batches(self) -> AsyncIterator[Batch]:
        """Batches of new lines, waiting (without blocking the loop) when there are none."""
        ...

    def close(self) -> None:
        """Release files and processes."""
        ...
