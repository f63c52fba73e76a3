"""The lines of a report that are context, not kills: banner, cgroup, counters, task table."""

from __future__ import annotations

from oomwatch.kernel import messages as msg
from oomwatch.kernel.report import ParseStats, Report
from oomwatch.model import KernelLine, MemcgUsage, OomKill

Out = list[OomKill]


class ReportContext:
    """Reads a report's context lines into the open `Report`; the parser adds the kills."""

    def __init__(self) -> None:
        self.stats = ParseStats()
        self._report: Report | None = None

    def _close_report(self, out: Out) -> None:
        """End the open report (the parser emits the kill a summary alone proves)."""
        raise NotImplementedError

    def _on_cpu(self, line: KernelLine, _out: Out) -> None:
        cpu = msg.parse_cpu(line.text)
        r = self._opened()
        if cpu and r is not None and r.header and r.trigger_pid is None:
            if cpu.comm == r.header.comm:
                r.trigger_pid = cpu.pid
            r.kernel_release = cpu.release
            self._touch(r, line)

    def _on_cpuset(self, line: KernelLine, _out: Out) -> None:
        cpuset = msg.parse_cpuset(line.text)
        r = self._opened()
        if cpuset is not None and r is not None and r.header:
            r.cpuset = cpuset
            self._touch(r, line)

    def _on_task_in(self, line: KernelLine, out: Out) -> None:
        paths = msg.parse_task_in(line.text)
        if paths:
            r = self._context_report(line, "task_memcg", out)
            r.task_memcg, r.oom_memcg = paths

    def _on_counter(self, line: KernelLine, out: Out) -> None:
        counter = msg.parse_counter(line.text)
        if not counter:
            return
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

    def _on_swap(self, line: KernelLine, _out: Out) -> None:
        swap = msg.parse_swap(line.text)
        r = self._opened()
        if swap and r is not None:
            if swap[0] == "Free":
                r.swap_free_kb = swap[1]
            else:
                r.swap_total_kb = swap[1]
            self._touch(r, line)

    def _on_group(self, line: KernelLine, _out: Out) -> None:
        r = self._report
        if r is not None and msg.parse_group_kill(line.text):
            r.group = True
            self._touch(r, line)
        elif r is not None:
            r.gap += 1

    def _on_limit_reached(self, line: KernelLine, _out: Out) -> None:
        path = msg.parse_limit_reached(line.text)
        r = self._opened()
        if path and r is not None:
            r.oom_memcg = r.oom_memcg or path

    def _table_line(self, line: KernelLine, out: Out) -> None:
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

    def _opened(self) -> Report | None:
        """The report still waiting for its kill, if any."""
        r = self._report
        return r if r is not None and r.open else None

    def _context_report(self, line: KernelLine, slot: str, out: Out) -> Report:
        """The open report a context line belongs to, or a new fragment if it has that part."""
        r = self._report
        if r is None or r.kills or getattr(r, slot) is not None:
            r = self._new_fragment(out)
        self._touch(r, line)
        return r

    def _new_fragment(self, out: Out) -> Report:
        self._close_report(out)
        self._report = Report()
        return self._report

    def _touch(self, r: Report, line: KernelLine) -> None:
        r.touch(line)
