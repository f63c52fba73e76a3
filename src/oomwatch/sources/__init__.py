"""Followers of the kernel log: each yields batches of raw lines with a cursor after them.

A follower only produces lines (and counts what it knows was lost); it never
interprets them. The cursor is an opaque string the follower can resume from; the
agent saves it only after what came before it is durably stored.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from oomwatch.errors import UsageError

if TYPE_CHECKING:
    from oomwatch.settings import Settings


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


@dataclass(frozen=True, slots=True)
class SourceKind:
    """One log source: how `run` follows it, and what people call it."""

    name: str
    label: str
    follow: Callable[[Settings, str | None, bool], Follower]  # settings, cursor, from_end


def _kmsg(s: Settings, cursor: str | None, from_end: bool) -> Follower:
    from oomwatch.enrich.host import read_boot_id
    from oomwatch.sources.kmsg import KmsgFollower

    return KmsgFollower(s.kmsg_path, read_boot_id(s.proc_root), cursor, from_end=from_end)


def _journald(_s: Settings, cursor: str | None, from_end: bool) -> Follower:
    from oomwatch.sources.journald import JournaldFollower

    if shutil.which("journalctl") is None:
        raise UsageError("journalctl is not installed")
    return JournaldFollower(cursor, from_end=from_end)


def _file(s: Settings, cursor: str | None, from_end: bool) -> Follower:
    from oomwatch.sources.logfile import LogFileFollower

    if not s.log_file.parent.is_dir():
        raise UsageError(f"{s.log_file.parent} does not exist")
    return LogFileFollower(s.log_file, cursor, from_end=from_end)


# the order of `auto`: the first that opens is followed
SOURCES: dict[str, SourceKind] = {
    k.name: k
    for k in (
        SourceKind("kmsg", "/dev/kmsg", _kmsg),
        SourceKind("journald", "journald (journalctl -k)", _journald),
        SourceKind("file", "a kernel log file (kern.log)", _file),
    )
}
