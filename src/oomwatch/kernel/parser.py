"""The streaming OOM report parser: `KernelLine`s in, `OomKill` records out.

Pure (no I/O, no clock) and shared by the live agent, `oomwatch parse` and
`oomwatch diagnose`. One record per real kill: a kill is proved only by a
`Killed process` line (or, when nothing else survived, an `oom-kill:` summary),
never by a header, a selection line, an `oom_reaper` line or a quote of a kill
in another program's log line. Context (header, memcg figures, task table,
summary) joins the kill that follows it within the same report; what the log
does not print stays None.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from oomwatch.kernel import messages as msg
from oomwatch.kernel import userspace
from oomwatch.kernel.cgroups import container_from_cgroup, systemd_unit_of
from oomwatch.model import (
    Consumer,
    Container,
    KernelLine,
    MemcgUsage,
    OomKill,
    Scope,
    TaskRow,
    Trigger,
    Victim,
)

# A report is printed within milliseconds; context older than this (by the
# kernel's or the log's clock) belongs to another report.
REPORT_WINDOW_S = 30.0
# Lines that are not part of an OOM report after which an open report is dropped:
# Mem-Info dumps on big machines run to a few thousand lines.
MAX_GAP_LINES = 3000
# A fragment (table rows or memcg lines without the header, as grep leaves them)
# is dropped sooner. The fast scanner looks back this many lines before a kill.
FRAGMENT_GAP_LINES = 200
TOP_CONSUMERS = 10
_EPOCH = datetime(1970, 1, 1)
_CONSTRAINT_SCOPE: dict[str, Scope] = {
    "CONSTRAINT_MEMCG": "memcg",
    "CONSTRAINT_CPUSET": "cpuset",
    "CONSTRAINT_MEMORY_POLICY": "mempolicy",
}


@dataclass(slots=True)
class ParseStats:
    """What the parser saw: lines, kills, and lines it could not read."""

    lines: int = 0
    kills: int = 0
    malformed: int = 0
    malformed_examples: list[tuple[str, str]] = field(default_factory=list)
    reports_without_kill: int = 0

    def note_malformed(self, line: KernelLine) -> None:
        """Count one unreadable line and keep the first few for the user."""
        self.malformed += 1
        if len(self.malformed_examples) < 5:
            where = f"line {line.lineno}" if line.lineno else f"byte {line.offset}"
            self.malformed_examples.append((where, line.text[:200]))


@dataclass(slots=True)
class _Report:
    """What one OOM report has printed so far."""

    header: Trigger | None = None
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
        return self.header is None


class OomParser:
    """Feed it lines in log order; it returns kills as soon as they are proved.

    `feed()` may return kills held back one line (a hand-wrapped kill line that
    may continue on the next line); `close()` returns what is still held.
    """

    def __init__(self) -> None:
        self.stats = ParseStats()
        self._report: _Report | None = None
        self._pending_kill: tuple[KernelLine, msg.KilledLine] | None = None
        self._pending_oomd: tuple[KernelLine, userspace.OomdKill] | None = None
        self._earlyoom_reason: str | None = None
        self._recent: deque[tuple[object, ...]] = deque(maxlen=256)

    @property
    def needs_context(self) -> bool:
        """Whether lines without an OOM keyword may still matter (a report is open)."""
        r = self._report
        return (
            self._pending_kill is not None
            or self._pending_oomd is not None
            or (r is not None and r.kills == 0)
        )

    def feed(self, line: KernelLine) -> list[OomKill]:
        """Take one line; return the kills it completes."""
        self.stats.lines += 1
        out: list[OomKill] = []
        text = line.text
        if self._pending_kill is not None:
            pline, killed = self._pending_kill
            self._pending_kill = None
            if line.fmt == "bare" and not _starts_message(text):
                joined = _join_wrapped(pline.text, text)
                rejoined = msg.parse_killed(joined)
                if rejoined is not None:
                    self._on_killed(_with_text(pline, joined), rejoined, out)
                    return out
            self._emit_kill(pline, killed, out)
        if self._pending_oomd is not None:
            oline, oomd = self._pending_oomd
            self._pending_oomd = None
            count = userspace.parse_oomd_count(text)
            if count and oomd.cgroup.endswith("/" + count[0]):
                out.append(self._oomd_kill(oline, oomd, count[1]))
                return out
            out.append(self._oomd_kill(oline, oomd, None))
        if not line.from_kernel or (line.fmt == "bare" and text.startswith(_USERSPACE_STARTS)):
            # kmsg and dmesg carry no user-space killer lines: whatever claims to be
            # one there was written to /dev/kmsg by someone else
            if line.fmt not in ("kmsg", "dmesg"):
                self._feed_userspace(line, out)
            return out
        self._expire(line, out)
        self._feed_kernel(line, out)
        return out

    def close(self) -> list[OomKill]:
        """Flush what is held back at the end of the input."""
        out: list[OomKill] = []
        if self._pending_kill is not None:
            pline, killed = self._pending_kill
            self._pending_kill = None
            self._emit_kill(pline, killed, out)
        if self._pending_oomd is not None:
            oline, oomd = self._pending_oomd
            self._pending_oomd = None
            out.append(self._oomd_kill(oline, oomd, None))
        self._close_report(out)
        return out

    # -- kernel lines ------------------------------------------------------------------

    def _feed_kernel(self, line: KernelLine, out: list[OomKill]) -> None:
        text = line.text
        r = self._report
        if r is not None and r.pending_summary is not None:
            if text.startswith(",") or (line.fmt == "bare" and not _starts_message(text)):
                r.pending_summary += text
                if msg.summary_is_complete(r.pending_summary):
                    self._take_summary(r, r.pending_summary, line)
                    r.pending_summary = None
                self._touch(r, line)
                return
            self._take_summary(r, r.pending_summary, line)
            r.pending_summary = None

        if "invoked oom-killer:" in text:
            header = msg.parse_header(text)
            if header is None:
                self.stats.note_malformed(line)
                return
            self._close_report(out)
            self._report = _Report(header=header)
            self._touch(self._report, line)
            return
        if "Killed process" in text:
            killed = msg.parse_killed(text)
            if killed is None:
                if msg.looks_like_kill(text):
                    self.stats.note_malformed(line)
                return
            self._on_killed(line, killed, out)
            return
        if text.startswith("oom-kill:"):
            r = self._context_report(line, "summary", out)
            if msg.summary_is_complete(text):
                self._take_summary(r, text, line)
            else:
                r.pending_summary = text
                r.summary_line = line
            return
        if "ill process " in text and " score " in text:
            sel = msg.parse_selection(text)
            if sel is not None:
                r = self._context_report(line, "selection", out)
                r.selection = sel
                if r.table_state == "open":
                    r.table_state = "closed"
            return
        if text.startswith("Out of memory and no killable processes"):
            if self._report is not None and self._report.kills == 0:
                self._report.pending_summary = self._report.summary = None
            self._close_report(out)
            return
        if text.startswith("["):
            self._table_line(line, out)
            return
        r = self._report
        open_report = r is not None and r.kills == 0
        if text.startswith(("CPU: ", "Pid: ")):
            cpu = msg.parse_cpu(text)
            if cpu and r is not None and open_report and r.header and r.trigger_pid is None:
                if cpu.comm == r.header.comm:
                    r.trigger_pid = cpu.pid
                r.kernel_release = cpu.release
                self._touch(r, line)
            return
        if " cpuset=" in text and " mems_allowed=" in text:
            cpuset = msg.parse_cpuset(text)
            if cpuset is not None and r is not None and open_report and r.header:
                r.cpuset = cpuset
                self._touch(r, line)
            return
        if text.startswith("Task in "):
            paths = msg.parse_task_in(text)
            if paths:
                r = self._context_report(line, "task_memcg", out)
                r.task_memcg, r.oom_memcg = paths
            return
        if ": usage " in text:
            counter = msg.parse_counter(text)
            if counter:
                self._take_counter(line, counter, out)
            return
        if "swap" in text and text.startswith(("Free swap", "Total swap")):
            swap = msg.parse_swap(text)
            if swap and r is not None and open_report:
                if swap[0] == "Free":
                    r.swap_free_kb = swap[1]
                else:
                    r.swap_total_kb = swap[1]
                self._touch(r, line)
            return
        if text.startswith("Tasks in ") and msg.parse_group_kill(text) and r is not None:
            r.group = True
            self._touch(r, line)
            return
        if text.startswith("Memory limit reached of cgroup "):
            path = msg.parse_limit_reached(text)
            if path and r is not None and open_report:
                r.oom_memcg = r.oom_memcg or path
            return
        if r is not None:
            r.gap += 1

    def _table_line(self, line: KernelLine, out: list[OomKill]) -> None:
        text = line.text
        r = self._report
        columns = msg.parse_table_header(text)
        if columns is not None:
            if r is None or r.kills or r.table_state != "none":
                r = self._new_fragment(out)
            r.columns = columns
            r.table_state = "open"
            self._touch(r, line)
            return
        if not msg.is_row(text):
            if r is not None:
                r.gap += 1
            return
        if r is None or r.kills or r.table_state == "closed":
            r = self._new_fragment(out)
        row = msg.parse_row(text, r.columns)
        if row is None:
            self.stats.note_malformed(line)
            if r.table_state == "open":
                r.table_state = "broken"
            return
        r.tasks.append(row)
        self._touch(r, line)

    def _take_counter(
        self, line: KernelLine, counter: tuple[str, int, int, int | None], out: list[OomKill]
    ) -> None:
        name, usage, limit, failcnt = counter
        if name == "memory":
            r = self._context_report(line, "memcg", out)
            r.memcg = MemcgUsage(usage_kb=usage, limit_kb=limit, failcnt=failcnt)
            return
        r2 = self._report
        if r2 is None or r2.kills or r2.memcg is None:
            return
        if name == "swap":  # cgroup v2; v1's memory+swap is a sum we do not split
            m = r2.memcg
            r2.memcg = MemcgUsage(m.usage_kb, m.limit_kb, m.failcnt, usage, limit)
        self._touch(r2, line)

    def _take_summary(self, r: _Report, text: str, line: KernelLine) -> None:
        summary = msg.parse_summary(text)
        if summary is None or summary.pid is None:
            self.stats.note_malformed(r.summary_line or line)
            r.summary_line = None
            return
        r.summary = summary
        r.summary_line = r.summary_line or line
        if r.table_state == "open":
            r.table_state = "closed"
        self._touch(r, line)

    def _on_killed(self, line: KernelLine, killed: msg.KilledLine, out: list[OomKill]) -> None:
        if not killed.complete and line.fmt not in ("kmsg", "journal-json"):
            # only a pasted or saved log is hand-wrapped; a live record is always whole
            self._pending_kill = (line, killed)
            return
        self._emit_kill(line, killed, out)

    def _emit_kill(self, line: KernelLine, killed: msg.KilledLine, out: list[OomKill]) -> None:
        key = (line.seq, line.uptime_s, line.wall, line.host, line.text)
        if (line.seq is not None or line.uptime_s is not None) and key in self._recent:
            # the same record read twice (overlapping pastes or rotated logs); its
            # report is a repeat too, so its summary must not become a kill of its own
            if self._report is not None:
                self._report.kills += 1
            return
        self._recent.append(key)
        r = self._report
        if r is not None and r.pending_summary is not None:
            self._take_summary(r, r.pending_summary, line)
            r.pending_summary = None
        if r is not None and r.kills and not r.group:
            r = None  # a later kill without a report of its own: rate-limited storm
        if r is not None:
            r.kills += 1
            if r.table_state == "open":
                r.table_state = "closed"
        out.append(self._build(line, killed, r))
        self.stats.kills += 1

    def _close_report(self, out: list[OomKill]) -> None:
        """End the open report; a summary whose kill line never came still proves a kill.

        The kernel prints `Killed process` right after the summary, unconditionally;
        a summary alone means the excerpt was cut (a filtered log), so it is the kill.
        """
        r, self._report = self._report, None
        if r is None or r.kills:
            return
        if r.pending_summary is not None:
            self._take_summary(r, r.pending_summary, r.summary_line or KernelLine("", "bare"))
            r.pending_summary = None
        s = r.summary
        if s is not None and s.pid is not None:
            line = r.summary_line or KernelLine(text="", fmt="bare")
            r.kills = 1
            out.append(self._build(line, msg.KilledLine(pid=s.pid, comm=s.task, message=None), r))
            self.stats.kills += 1
        elif r.header is not None:
            self.stats.reports_without_kill += 1

    # -- report bookkeeping -----------------------------------------------------------

    def _context_report(self, line: KernelLine, slot: str, out: list[OomKill]) -> _Report:
        """The open report a context line belongs to, or a new fragment if it has that part."""
        r = self._report
        if r is None or r.kills or getattr(r, slot) is not None:
            r = self._new_fragment(out)
        self._touch(r, line)
        return r

    def _new_fragment(self, out: list[OomKill]) -> _Report:
        self._close_report(out)
        self._report = _Report()
        return self._report

    def _touch(self, r: _Report, line: KernelLine) -> None:
        r.gap = 0
        if line.uptime_s is not None:
            r.last_uptime = line.uptime_s
        if line.wall is not None:
            r.last_wall_s = _wall_s(line.wall)

    def _expire(self, line: KernelLine, out: list[OomKill]) -> None:
        r = self._report
        if r is None:
            return
        stale = False
        if line.uptime_s is not None and r.last_uptime is not None:
            stale = abs(line.uptime_s - r.last_uptime) > REPORT_WINDOW_S
        elif line.wall is not None and r.last_wall_s is not None:
            now = _wall_s(line.wall)
            stale = abs(now - r.last_wall_s) > REPORT_WINDOW_S
        limit = FRAGMENT_GAP_LINES if r.fragment else MAX_GAP_LINES
        if stale or r.gap > limit:
            self._close_report(out)

    # -- building records ---------------------------------------------------------------

    def _build(self, line: KernelLine, k: msg.KilledLine, r: _Report | None) -> OomKill:
        rows = r.tasks if r else []
        row = next((t for t in rows if t.pid == k.pid), None)
        s = r.summary if r else None
        uid = k.uid
        if uid is None and row is not None:
            uid = row.uid
        if (
            uid is None
            and s is not None
            and (s.pid == k.pid or (s.task == k.comm and r and r.kills == 1))
        ):
            uid = s.uid
        adj = (
            k.oom_score_adj if k.oom_score_adj is not None else (row.oom_score_adj if row else None)
        )
        page_kb = _page_kb(row, k)
        rss_parts = (k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb)
        rss_kb = None if k.anon_rss_kb is None else sum(p or 0 for p in rss_parts)
        pgtables_kb = k.pgtables_kb
        if pgtables_kb is None and row is not None and row.pgtables_bytes is not None:
            pgtables_kb = row.pgtables_bytes // 1024
        victim = Victim(
            pid=k.pid,
            comm=k.comm,
            uid=uid,
            total_vm_kb=k.total_vm_kb,
            anon_rss_kb=k.anon_rss_kb,
            file_rss_kb=k.file_rss_kb,
            shmem_rss_kb=k.shmem_rss_kb,
            pgtables_kb=pgtables_kb,
            oom_score_adj=adj,
            swap_kb=row.swapents * page_kb if row and row.swapents is not None else None,
            rss_kb=rss_kb,
        )
        oom_memcg = (s.oom_memcg if s else None) or (r.oom_memcg if r else None)
        task_memcg = (s.task_memcg if s else None) or (r.task_memcg if r else None)
        cpuset = (s.cpuset if s else None) or (r.cpuset if r else None)
        trigger = None
        if r is not None and r.header is not None:
            h = r.header
            trigger = Trigger(
                h.comm,
                r.trigger_pid,
                h.gfp_mask,
                h.gfp_flags,
                h.order,
                h.oom_score_adj,
                h.nodemask or (s.nodemask if s else None),
            )
        message = k.message or (r.selection.message if r and r.selection else None)
        return OomKill(
            killer="kernel",
            victim=victim,
            host=line.host,
            time=line.wall,
            uptime_s=line.uptime_s,
            seq=line.seq,
            lineno=line.lineno,
            offset=line.offset,
            message=message,
            scope=_scope(s, oom_memcg, r.memcg if r else None, message),
            constraint=s.constraint if s else None,
            oom_memcg=oom_memcg,
            task_memcg=task_memcg,
            container=container_from_cgroup(task_memcg or oom_memcg) or _from_cpuset(cpuset),
            systemd_unit=systemd_unit_of(task_memcg or oom_memcg),
            cpuset=cpuset,
            trigger=trigger,
            memcg=r.memcg if r else None,
            kernel_release=r.kernel_release if r else None,
            tasks=tuple(rows),
            tasks_complete=bool(r and r.columns is not None and r.table_state == "closed"),
            page_kb=page_kb,
            top_consumers=_top(rows, page_kb),
            selected_score=r.selection.score if r and r.selection else None,
            swap_free_kb=r.swap_free_kb if r else None,
            swap_total_kb=r.swap_total_kb if r else None,
        )

    # -- user-space killers ------------------------------------------------------------

    def _feed_userspace(self, line: KernelLine, out: list[OomKill]) -> None:
        text = line.text
        if text.startswith(("sending SIG", "killing process")):
            e = userspace.parse_earlyoom(text)
            if e is not None:
                out.append(
                    OomKill(
                        killer="earlyoom",
                        victim=Victim(pid=e.pid, comm=e.comm, uid=e.uid, rss_kb=e.rss_kb),
                        host=line.host,
                        time=line.wall,
                        lineno=line.lineno,
                        signal=e.signal,
                        reason=self._earlyoom_reason,
                        selected_score=e.score,
                    )
                )
                self.stats.kills += 1
            return
        if text.startswith("low memory!"):
            self._earlyoom_reason = userspace.parse_earlyoom_low(text)
            return
        if text.startswith("Killed /") and line.origin in ("systemd-oomd", "kernel"):
            oomd = userspace.parse_oomd(text)
            if oomd is not None:
                self._pending_oomd = (line, oomd)

    def _oomd_kill(self, line: KernelLine, o: userspace.OomdKill, n: int | None) -> OomKill:
        self.stats.kills += 1
        return OomKill(
            killer="systemd-oomd",
            victim=Victim(pid=None, comm=None),
            host=line.host,
            time=line.wall,
            lineno=line.lineno,
            task_memcg=o.cgroup,
            container=container_from_cgroup(o.cgroup),
            systemd_unit=systemd_unit_of(o.cgroup),
            reason=o.reason,
            processes_killed=n,
        )


def _scope(
    s: msg.Summary | None, oom_memcg: str | None, memcg: MemcgUsage | None, message: str | None
) -> Scope | None:
    if s is not None:
        if s.global_oom:
            return "global"
        if s.constraint in _CONSTRAINT_SCOPE:
            return _CONSTRAINT_SCOPE[s.constraint]
        if s.oom_memcg:  # 5.0-5.2 printed CONSTRAINT_NONE for memcg OOMs
            return "memcg"
        if s.constraint == "CONSTRAINT_NONE":
            return "global"
    if oom_memcg or memcg is not None or (message and message.startswith("Memory cgroup")):
        return "memcg"
    if message and message.startswith("Out of memory"):
        return "global"
    return None


def _page_kb(row: TaskRow | None, k: msg.KilledLine) -> int:
    """Page size in kB, from the victim's row (pages) against its kill line (kB); else 4."""
    if row is None or not row.rss_pages or row.rss_pages < 256 or k.anon_rss_kb is None:
        return 4
    rss_kb = (k.anon_rss_kb or 0) + (k.file_rss_kb or 0) + (k.shmem_rss_kb or 0)
    ratio = rss_kb / row.rss_pages
    for size in (4, 16, 64):
        if size / 1.5 <= ratio <= size * 1.5:
            return size
    return 4


def _top(rows: list[TaskRow], page_kb: int) -> tuple[Consumer, ...]:
    ranked = sorted((t for t in rows if t.rss_pages is not None), key=lambda t: -(t.rss_pages or 0))
    return tuple(
        Consumer(
            pid=t.pid,
            name=t.name,
            rss_kb=(t.rss_pages or 0) * page_kb,
            swap_kb=t.swapents * page_kb if t.swapents is not None else None,
            uid=t.uid,
            oom_score_adj=t.oom_score_adj,
        )
        for t in ranked[:TOP_CONSUMERS]
    )


def _from_cpuset(cpuset: str | None) -> Container | None:
    """Before 5.0 the cpuset line is often all that names a container (its leaf name)."""
    if not cpuset or cpuset == "/":
        return None
    leaf = cpuset.rsplit("/", 1)[-1]
    c = container_from_cgroup("/" + leaf)
    if c is not None:
        return c
    if len(leaf) == 64 and all(ch in "0123456789abcdef" for ch in leaf):
        return Container(runtime=None, id=leaf, pod_uid=None, qos_class=None, systemd_unit=None)
    return None


_USERSPACE_STARTS = ("sending SIG", "killing process", "low memory!", "Killed /")
_MESSAGE_STARTS = (
    "oom-kill:",
    "Killed process",
    "Memory cgroup",
    "Out of memory",
    "oom_reaper:",
    "[",
    "CPU:",
    "Call Trace",
    "Tasks state",
    "memory:",
    "swap:",
    "kmem:",
    "Task in",
)


def _starts_message(text: str) -> bool:
    """Whether a stampless line begins a kernel message of its own (not a wrapped tail)."""
    return text.startswith(_MESSAGE_STARTS) or " invoked oom-killer:" in text


def _join_wrapped(left: str, right: str) -> str:
    """Rejoin a kill line that a paste wrapped: numbers and `kB` never take a space."""
    if left[-1:].isdigit() or left.endswith((":", "-", "(")) or right.startswith(("kB", ")")):
        return left + right
    return left.rstrip() + " " + right.lstrip()


def _with_text(line: KernelLine, text: str) -> KernelLine:
    return dataclasses.replace(line, text=text)


def _wall_s(wall: datetime) -> float:
    """Seconds of a wall time, aware or naive (syslog prints local time without a zone)."""
    if wall.tzinfo is not None:
        return wall.timestamp()
    return (wall - _EPOCH).total_seconds()
