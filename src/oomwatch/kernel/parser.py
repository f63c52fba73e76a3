"""The streaming OOM report parser: `KernelLine`s in, `OomKill` records out.

Pure (no I/O, no clock) and shared by the live agent, `oomwatch parse` and
`oomwatch diagnose`. One record per real kill: a kill is proved only by a
`Killed process` line (or, when nothing else survived, an `oom-kill:` summary),
never by a header, a selection line, an `oom_reaper` line or a quote of a kill
in another program's log line. Context (header, memcg figures, task table,
summary) joins the kill that follows it within the same report; what the log
does not print stays None. A line that mentions a kill but gives nothing is
counted (`ParseStats.unread`), so a kill is never lost in silence.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Callable

from oomwatch.kernel import messages as msg
from oomwatch.kernel import record, userspace
from oomwatch.kernel.context import Out, ReportContext
from oomwatch.kernel.killed import KilledLine, looks_like_kill, parse_killed
from oomwatch.kernel.report import FRAGMENT_GAP_LINES, ParseStats, Report
from oomwatch.kernel.wrapping import (
    WHOLE_RECORDS,
    cut_head,
    join_wrapped,
    mentions_kill,
    starts_message,
)
from oomwatch.model import KernelLine, OomKill

__all__ = ["FRAGMENT_GAP_LINES", "OomParser", "ParseStats"]


class OomParser(ReportContext):
    """Feed it lines in log order; it returns kills as soon as they are proved.

    `feed()` may return kills held back one line (a hand-wrapped kill line that
    may continue on the next line); `close()` returns what is still held.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending_kill: tuple[KernelLine, KilledLine] | None = None
        self._pending_oomd: tuple[KernelLine, userspace.OomdKill] | None = None
        self._wrapped: KernelLine | None = None
        self._earlyoom_reason: str | None = None
        self._recent: deque[tuple[object, ...]] = deque(maxlen=256)
        self._took = False

    @property
    def needs_context(self) -> bool:
        """Whether lines without an OOM keyword may still matter (a report is open)."""
        r = self._report
        return (
            self._pending_kill is not None
            or self._pending_oomd is not None
            or self._wrapped is not None
            or (r is not None and r.open)
        )

    def pass_gate(self) -> tuple[float | None, int] | None:
        """Whether quiet records (`quiet_record`) may be passed over now, and within what.

        None: each must be fed. Else the uptime of the open report's last line (a record
        `too_far` from it must be fed) and how many more records its gap allows, as
        `Report.stale_at` has them. What `feed` does with whole kmsg records no handler
        takes (most of a report: its call trace, registers and statistics), without
        making lines of them; `passed` counts them.
        """
        r = self._report
        if (
            r is None
            or r.pending_summary is not None
            or self._pending_kill is not None
            or self._pending_oomd is not None
            or self._wrapped is not None
        ):
            return None
        return r.last_uptime, r.gap_limit - r.gap + 1

    def passed(self, records: int) -> None:
        """Count records passed over within `pass_gate`, as `feed` counts them."""
        r = self._report
        if r is not None:
            self.stats.lines += records
            r.gap += records

    def feed(self, line: KernelLine) -> Out:
        """Take one line; return the kills it completes."""
        self.stats.lines += 1
        out: Out = []
        self._took = False
        resumed = self._resume(line, out)
        if resumed is None:
            return out
        line = resumed
        if cut_head(line):
            self._wrapped = line  # a kill line cut by a paste: the rest follows
            return out
        text = line.text
        if line.origin == "kmsg-user":
            return out  # a process wrote it to /dev/kmsg: no killer logs that way
        if not line.from_kernel or (line.fmt == "bare" and text.startswith(_USERSPACE_STARTS)):
            # kmsg and dmesg carry no user-space killer lines: whatever claims to be
            # one there was written to /dev/kmsg by someone else
            if line.fmt not in ("kmsg", "dmesg"):
                self._feed_userspace(line, out)
                if not self._took and line.fmt == "bare" and mentions_kill(text):
                    self.stats.note_unread(line)
            return out
        self._expire(line, out)
        r = self._report
        if (r is None or r.pending_summary is None) and quiet(text):
            if r is not None:
                r.gap += 1  # what `_feed_kernel` does with a line no handler takes
            return out
        self._feed_kernel(line, out)
        if not self._took and mentions_kill(text):
            self.stats.note_unread(line)
        return out

    def close(self) -> Out:
        """Flush what is held back at the end of the input."""
        out: Out = []
        if self._pending_kill is not None:
            pline, killed = self._pending_kill
            self._pending_kill = None
            self._emit_kill(pline, killed, out)
        if self._pending_oomd is not None:
            oline, oomd = self._pending_oomd
            self._pending_oomd = None
            self._found(out, record.oomd_kill(oline, oomd, None))
        if self._wrapped is not None:
            self.stats.note_unread(self._wrapped, "kill line cut short")
            self._wrapped = None
        self._close_report(out)
        return out

    def _resume(self, line: KernelLine, out: Out) -> KernelLine | None:
        """Finish what the line before left held; None when this line completed it."""
        continues = line.fmt == "bare" and not starts_message(line.text)
        if self._pending_kill is not None:
            pline, killed = self._pending_kill
            self._pending_kill = None
            if continues:
                joined = join_wrapped(pline.text, line.text)
                rejoined = parse_killed(joined)
                if rejoined is not None:
                    self._on_killed(_with_text(pline, joined), rejoined, out)
                    return None
            self._emit_kill(pline, killed, out)
        if self._pending_oomd is not None:
            oline, oomd = self._pending_oomd
            self._pending_oomd = None
            count = userspace.parse_oomd_count(line.text)
            if count and oomd.cgroup.endswith("/" + count[0]):
                self._found(out, record.oomd_kill(oline, oomd, count[1]))
                return None
            self._found(out, record.oomd_kill(oline, oomd, None))
        if self._wrapped is not None:
            head, self._wrapped = self._wrapped, None
            if continues:
                return _with_text(head, join_wrapped(head.text, line.text))
            self.stats.note_unread(head, "kill line cut short")
        return line

    def _found(self, out: Out, kill: OomKill) -> None:
        out.append(kill)
        self.stats.kills += 1
        self._took = True

    # -- kernel lines ------------------------------------------------------------------

    def _feed_kernel(self, line: KernelLine, out: Out) -> None:
        r = self._report
        if r is not None and r.pending_summary is not None and self._continue_summary(r, line):
            return
        text = line.text
        for applies, handle in _KERNEL_LINES:
            if applies(text):
                handle(self, line, out)
                return
        if r is not None:
            r.gap += 1

    def _continue_summary(self, r: Report, line: KernelLine) -> bool:
        """Join a wrapped `oom-kill:` line's continuation; False when this line is not one."""
        text = line.text
        pending = r.pending_summary or ""
        self._took = True
        if text.startswith(",") or (line.fmt == "bare" and not starts_message(text)):
            r.pending_summary = pending + text
            if msg.summary_is_complete(r.pending_summary):
                self._take_summary(r, r.pending_summary, line)
                r.pending_summary = None
            self._touch(r, line)
            return True
        self._take_summary(r, pending, line)
        r.pending_summary = None
        self._took = False
        return False

    def _on_header(self, line: KernelLine, out: Out) -> None:
        header = msg.parse_header(line.text)
        if header is None:
            self.stats.note_malformed(line)
            return
        self._took = True
        self._close_report(out)
        self._report = Report(header=header, header_line=line)
        self._touch(self._report, line)

    def _on_kill_line(self, line: KernelLine, out: Out) -> None:
        killed = parse_killed(line.text)
        if killed is None:
            if looks_like_kill(line.text):
                self.stats.note_malformed(line)
            return
        self._took = True
        self._on_killed(line, killed, out)

    def _on_summary(self, line: KernelLine, out: Out) -> None:
        self._took = True
        r = self._context_report(line, "summary", out)
        if msg.summary_is_complete(line.text):
            self._take_summary(r, line.text, line)
        else:
            r.pending_summary = line.text
            r.summary_line = line

    def _on_selection(self, line: KernelLine, out: Out) -> None:
        sel = msg.parse_selection(line.text)
        if sel is None:
            return
        self._took = True
        r = self._context_report(line, "selection", out)
        r.selection = sel
        if r.table_state == "open":
            r.table_state = "closed"

    def _on_nothing_killable(self, _line: KernelLine, out: Out) -> None:
        self._took = True
        r = self._report
        if r is not None and r.open:
            r.pending_summary = r.summary = None
            r.nothing_killable = True
        self._close_report(out)

    def _take_summary(self, r: Report, text: str, line: KernelLine) -> None:
        summary = msg.parse_summary(text)
        if summary is None or summary.pid is None:
            self.stats.note_malformed(r.summary_line or line)
            r.summary_line = None
            r.unread_line = r.unread_line or line
            if summary is not None and r.summary is None:
                r.summary = summary  # cut: its complete fields still count, it proves no kill
            return
        r.summary = summary
        r.summary_line = r.summary_line or line
        if r.table_state == "open":
            r.table_state = "closed"
        self._touch(r, line)

    def _on_killed(self, line: KernelLine, killed: KilledLine, out: Out) -> None:
        if not killed.complete and line.fmt not in WHOLE_RECORDS:
            self._pending_kill = (line, killed)
            return
        self._emit_kill(line, killed, out)

    def _emit_kill(self, line: KernelLine, killed: KilledLine, out: Out) -> None:
        if killed.out_of_bounds:
            self.stats.note_malformed(line)
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
        self._found(out, record.kernel_kill(line, killed, r))

    def _close_report(self, out: Out) -> None:
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
            killed = KilledLine(pid=s.pid, comm=s.task, message=None)
            self._found(out, record.kernel_kill(line, killed, r))
        else:
            if r.header is not None:
                self.stats.reports_without_kill += 1
            # a report cut before its kill line: the kill happened, but is not here
            if r.unread_line is not None:
                self.stats.note_unread(r.unread_line, "summary cut short, no kill line after it")
            elif r.header_line is not None and not r.nothing_killable:
                self.stats.note_unread(r.header_line, "report ends before its kill line")

    # -- report bookkeeping -----------------------------------------------------------

    def _expire(self, line: KernelLine, out: Out) -> None:
        if self._report is not None and self._report.stale(line):
            self._close_report(out)

    # -- user-space killers ------------------------------------------------------------

    def _feed_userspace(self, line: KernelLine, out: Out) -> None:
        text = line.text
        if text.startswith(("sending SIG", "killing process")):
            e = userspace.parse_earlyoom(text)
            if e is not None:
                self._found(out, record.earlyoom_kill(line, e, self._earlyoom_reason))
            return
        if text.startswith("low memory!"):
            self._earlyoom_reason = userspace.parse_earlyoom_low(text)
            self._took = True
            return
        if text.startswith(userspace.OOMD_STARTS) and line.origin in ("systemd-oomd", "kernel"):
            oomd = userspace.parse_oomd(text)
            if oomd is not None:
                self._pending_oomd = (line, oomd)
                self._took = True
            elif line.fmt not in WHOLE_RECORDS:
                self._wrapped = line  # cut by a paste: the rest may follow
                self._took = True


_Handler = Callable[[OomParser, KernelLine, Out], None]
# In this order: the first that applies handles the line.
_KERNEL_LINES: tuple[tuple[Callable[[str], bool], _Handler], ...] = (
    (lambda t: "invoked oom-killer:" in t, OomParser._on_header),
    (lambda t: "Killed process" in t, OomParser._on_kill_line),
    (lambda t: t.startswith("oom-kill:"), OomParser._on_summary),
    (lambda t: "ill process " in t and " score " in t, OomParser._on_selection),
    (
        lambda t: t.startswith("Out of memory and no killable processes"),
        OomParser._on_nothing_killable,
    ),
    (lambda t: t.startswith("["), ReportContext._table_line),
    (lambda t: t.startswith(("CPU: ", "Pid: ")), ReportContext._on_cpu),
    (lambda t: " cpuset=" in t and " mems_allowed=" in t, ReportContext._on_cpuset),
    (lambda t: t.startswith("Task in "), ReportContext._on_task_in),
    (lambda t: ": usage " in t, ReportContext._on_counter),
    (lambda t: "swap" in t and t.startswith(("Free swap", "Total swap")), ReportContext._on_swap),
    (lambda t: t.startswith("Tasks in "), ReportContext._on_group),
    (lambda t: t.startswith("Memory limit reached of cgroup "), ReportContext._on_limit_reached),
)

# Every line a handler of `_KERNEL_LINES` takes, or that tells of a kill, holds one of
# these or starts with one of those: most lines of a report (its call trace, registers
# and memory statistics) hold none, and are passed over with a few substring tests.
_QUIET_UNLESS_IN = (
    "oom",
    "process",
    " cpuset=",
    ": usage ",
    "sending SIG",
    *userspace.OOMD_STARTS,
)
_QUIET_UNLESS_STARTS = (
    "[",
    "CPU: ",
    "Pid: ",
    "Task in ",
    "Tasks in ",
    "Free swap",
    "Total swap",
    "Memory limit reached of cgroup ",
)


def quiet(text: str) -> bool:
    """Whether no kernel-line handler takes `text` and it tells of no kill (a test holds this)."""
    for m in _QUIET_UNLESS_IN:
        if m in text:
            return False
    return not text.startswith(_QUIET_UNLESS_STARTS)


# A plain kmsg record (`plain_kmsg_parts`: facility 0, whole, printable ASCII without
# escapes) whose stripped text is `quiet`, told from its bytes alone: no text made.
_QUIET_RECORD = re.compile(
    rb"[0-7],\d{1,20},(\d{1,20}),-(?:,[^;]*)?; *(?!%s)[!-~][ -~]*\Z"
    % b"|".join(re.escape(s.encode()) for s in _QUIET_UNLESS_STARTS)
)
_LOUD_BYTES = re.compile(b"|".join(re.escape(s.encode()) for s in (*_QUIET_UNLESS_IN, "\\x")))


def quiet_record(raw: bytes) -> float | None:
    """The uptime (s) of a raw kmsg record that is plain and `quiet`; None for any other."""
    m = _QUIET_RECORD.match(raw)
    if m is None or _LOUD_BYTES.search(raw, m.end(1)) is not None:
        return None
    return int(m[1]) / 1_000_000


_USERSPACE_STARTS = ("sending SIG", "killing process", "low memory!", *userspace.OOMD_STARTS)


def _with_text(line: KernelLine, text: str) -> KernelLine:
    return dataclasses.replace(line, text=text)
