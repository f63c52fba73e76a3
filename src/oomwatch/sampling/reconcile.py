"""Kills the kernel counted against kills the log showed: what is missing becomes an incident.

The kernel rate-limits its OOM reports and its log can be overwritten before it is
read, but it always counts: `/proc/vmstat oom_kill` for the machine, `oom_kill` in
each memory cgroup's `memory.events` (v2) or `memory.oom_control` (v1). A shortfall
confirmed by two checks in a row (the log may lag its counter by a moment) is
reported once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from oomwatch.model import CgroupMem, OomKill


class Reconciler:
    """The machine-wide counter against every kernel kill read.

    `accounted` is the counter value up to which every kill was either read or
    reported as unseen; it is saved with the cursor, so a restart (same boot)
    reconciles the downtime too.
    """

    def __init__(self, accounted: int | None, count_after: float | None) -> None:
        self.accounted = accounted
        self.seen = 0
        # on a fresh start, kills replayed from before it are history, not new kills
        self.count_after = count_after
        self._suspect: int | None = None

    def saw(self, k: OomKill) -> None:
        """A kernel kill read from the log."""
        if self.count_after is None or (k.uptime_s or 0.0) > self.count_after:
            self.seen += 1

    def confirms(self, k: OomKill, counter: int | None) -> bool | None:
        """Whether the counter counted a kill read from a forgeable file (None: cannot tell).

        The kernel counts a kill before it prints the report, so a real kill's line
        always finds a count not yet matched by a kill read. Call before `saw(k)`.
        """
        if counter is None or self.accounted is None:
            return None
        if self.count_after is not None and (k.uptime_s or 0.0) <= self.count_after:
            return None  # from before the start: inside the baseline, not checkable
        return counter - self.accounted - self.seen > 0

    def absorb(self, missing: int) -> None:
        """Kills already reported as unseen elsewhere (per cgroup): not to report again."""
        if self.accounted is not None:
            self.accounted += missing

    def check(self, counter: int | None) -> int:
        """Kills missing from the log; reported only when two checks in a row agree."""
        if counter is None:
            return 0
        if self.accounted is None:
            self.accounted = counter
            return 0
        missing = counter - self.accounted - self.seen
        if missing <= 0:
            self._suspect = None
            return 0
        if self._suspect != counter:
            self._suspect = counter
            return 0
        self.accounted += missing
        self._suspect = None
        return missing

    def state(self) -> int | None:
        """The value to save with the cursor."""
        return None if self.accounted is None else self.accounted + self.seen


@dataclass(frozen=True, slots=True)
class Unseen:
    """Kills a cgroup's counter shows that the log did not."""

    path: str
    missing: int
    counter: int


class CgroupReconciler:
    """Each limited memory cgroup's counter against the kills read in it or below it.

    The counters count a cgroup's descendants too, so the deepest cgroup reports a
    shortfall and its tracked ancestors take it as accounted. A cgroup's baseline is
    its counter when first seen by this run (the machine-wide counter covers the
    agent's downtime).
    """

    def __init__(self) -> None:
        self._base: dict[str, int] = {}
        self._seen: Counter[str] = Counter()
        self._suspect: dict[str, int] = {}

    def saw(self, k: OomKill) -> None:
        """A kernel kill read from the log, in its task's cgroup."""
        if k.task_memcg:
            self._seen[k.task_memcg] += 1

    def check(self, cgroups: Iterable[CgroupMem]) -> list[Unseen]:
        """Shortfalls confirmed by this check."""
        out: list[Unseen] = []
        counted: dict[str, int] = {}
        for c in cgroups:
            if c.oom_kills is not None:
                counted[c.path] = c.oom_kills
        for path in list(self._base):
            if path not in counted:  # removed: its kills, if any, were counted globally
                del self._base[path]
                self._suspect.pop(path, None)
        # kills in cgroups under no counted one count for nothing: a node that kills in
        # a new cgroup each time must not grow this (or the sums below) without end
        for path in [p for p in self._seen if not _under_any(p, counted)]:
            del self._seen[path]
        for path in sorted(counted, key=lambda p: -p.count("/")):
            counter = counted[path]
            if path not in self._base:
                self._base[path] = counter - self._seen_under(path)
                continue
            missing = counter - self._base[path] - self._seen_under(path)
            if missing <= 0:
                self._suspect.pop(path, None)
                continue
            if self._suspect.get(path) != counter:
                self._suspect[path] = counter
                continue
            del self._suspect[path]
            self._base[path] += missing
            for other in self._base:
                if other != path and path.startswith(other.rstrip("/") + "/"):
                    self._base[other] += missing
            out.append(Unseen(path, missing, counter))
        return out

    def _seen_under(self, path: str) -> int:
        prefix = path.rstrip("/") + "/"
        return sum(n for p, n in self._seen.items() if p == path or p.startswith(prefix))


def _under_any(path: str, cgroups: Mapping[str, int]) -> bool:
    """Whether `path` or one of its ancestors is among `cgroups`."""
    while True:
        if path in cgroups:
            return True
        if path in ("", "/"):
            return False
        path = path.rsplit("/", 1)[0] or "/"
