"""What one OOM report has printed so far, and what the parser counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from oomwatch.kernel import messages as msg
from oomwatch.model import KernelLine, MemcgUsage, TaskRow, Trigger

# A report is printed within milliseconds; context older than this (by the
# kernel's or the log's clock) belongs to another report.
REPORT_WINDOW_S = 30.0
# Lines that are not part of an OOM report after which an open report is dropped:
# Mem-Info dumps on big machines run to a few thousand lines.
MAX_GAP_LINES = 3000
# A fragment (table rows or memcg lines without the header, as grep leaves them)
# is dropped sooner. The fast scanner looks back this many lines before a kill.
FRAGMENT_GAP_LINES = 200
EXAMPLES = 5
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line the parser could not use, kept to show the user."""

    lineno: int
    offset: int | None
    text: str
    why: str

    def where(self, line_of: dict[int, int] | None = None) -> str:
        """`line N` (through `line_of` for a byte offset, when known), else `byte N`."""
        if self.lineno:
            return f"line {self.lineno}"
        if line_of and self.offset in line_of:
            return f"line {line_of[self.offset]}"
        return f"byte {self.offset}"


def _skipped(line: KernelLine, why: str) -> Skipped:
    return Skipped(line.lineno, line.offset, line.text[:200], why)


@dataclass(slots=True)
class ParseStats:
    """What the parser saw: lines, kills, and lines it could not read."""

    lines: int = 0
    kills: int = 0
    malformed: int = 0
    malformed_examples: list[Skipped] = field(default_factory=list)
    reports_without_kill: int = 0
    unread: int = 0
    unread_examples: list[Skipped] = field(default_factory=list)

    def note_malformed(self, line: KernelLine) -> None:
        """Count one unreadable line and keep the first few for the user."""
        self.malformed += 1
        if len(self.malformed_examples) < EXAMPLES:
            self.malformed_examples.append(_skipped(line, "malformed"))

    def note_unread(self, line: KernelLine, why: str = "could not be read") -> None:
        """Count a line that tells of an OOM kill but gave no record, and say why."""
        self.unread += 1
        if len(self.unread_examples) < EXAMPLES:
            self.unread_examples.append(_skipped(line, why))

    def offsets(self) -> list[int]:
        """The byte offsets of the kept examples that have no line number."""
        kept = self.malformed_examples + self.unread_examples
        return sorted({s.offset for s in kept if not s.lineno and s.offset is not None})


@dataclass(slots=True)
class Report:
    """What one OOM report has printed so far."""

    header: Trigger | None = None
    header_line: KernelLine | None = None
    unread_line: KernelLine | None = None  # a cut summary: it told of a kill it cannot prove
    nothing_killable: bool = False
    trigger_pid: int | None = None
    kernel_release: str | None = None
    cpuset: str | None = None
    task_memcg: str | None = None
    oom_memcg: str | None = None
    memcg: MemcgUsage | None = None
    columns: tuple[str, ...] | None = None
    tasks: list[TaskRow] = field(default_factory=list)
    table_state: str = "none"  # none | open | closed | broken
    summary: msg.Summary | None = None
    summary_line: KernelLine | None = None
    pending_summary: str | None = None
    selection: msg.Selection | None = None
    group: bool = False
    swap_free_kb: int | None = None
    swap_total_kb: int | None = None
    kills: int = 0
    gap: int = 0
    last_uptime: float | None = None
    last_wall_s: float | None = None

    @property
    def fragment(self) -> bool:
        """A report whose header the log did not keep (grep, a filter, a cut paste)."""
        return self.header is None

    @property
    def open(self) -> bool:
        """Still waiting for its kill."""
        return self.kills == 0

    def touch(self, line: KernelLine) -> None:
        """Note that a line of this report was read."""
        self.gap = 0
        if line.uptime_s is not None:
            self.last_uptime = line.uptime_s
        if line.wall is not None:
            self.last_wall_s = _wall_s(line.wall)

    def stale(self, line: KernelLine) -> bool:
        """Whether `line` is too far (in time or lines) from this report to belong to it."""
        return self.stale_at(line.uptime_s, line.wall)

    @property
    def gap_limit(self) -> int:
        """The most lines no handler takes that may come between two of its own."""
        return FRAGMENT_GAP_LINES if self.fragment else MAX_GAP_LINES

    def stale_at(self, uptime_s: float | None, wall: datetime | None) -> bool:
        """`stale` for a line stamped so."""
        far = False
        if uptime_s is not None and self.last_uptime is not None:
            far = too_far(uptime_s, self.last_uptime)
        elif wall is not None and self.last_wall_s is not None:
            far = too_far(_wall_s(wall), self.last_wall_s)
        return far or self.gap > self.gap_limit

    def trigger(self) -> Trigger | None:
        """The task whose allocation invoked the killer, as the header printed it."""
        h = self.header
        if h is None:
            return None
        s = self.summary
        nodemask = h.nodemask or (s.nodemask if s else None)
        return Trigger(
            h.comm, self.trigger_pid, h.gfp_mask, h.gfp_flags, h.order, h.oom_score_adj, nodemask
        )


def too_far(a_s: float, b_s: float) -> bool:
    """Whether two stamps (seconds) are too far apart for their lines to share a report."""
    return abs(a_s - b_s) > REPORT_WINDOW_S


def _wall_s(wall: datetime) -> float:
    """Seconds of a wall time, aware or naive (syslog prints local time without a zone)."""
    if wall.tzinfo is not None:
        return wall.timestamp()
    return (wall - _EPOCH).total_seconds()
