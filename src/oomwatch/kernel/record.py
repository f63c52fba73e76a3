"""Turn what a report printed into an `OomKill` record."""

from __future__ import annotations

from oomwatch.kernel import messages as msg
from oomwatch.kernel import userspace
from oomwatch.kernel.cgroups import container_from_cgroup, systemd_unit_of
from oomwatch.kernel.killed import KilledLine
from oomwatch.kernel.report import Report
from oomwatch.model import (
    Consumer,
    Container,
    KernelLine,
    MemcgUsage,
    OomKill,
    Scope,
    TaskRow,
    Victim,
)

TOP_CONSUMERS = 10
_CONSTRAINT_SCOPE: dict[str, Scope] = {
    "CONSTRAINT_MEMCG": "memcg",
    "CONSTRAINT_CPUSET": "cpuset",
    "CONSTRAINT_MEMORY_POLICY": "mempolicy",
}


def kernel_kill(line: KernelLine, k: KilledLine, r: Report | None) -> OomKill:
    """The record of a kernel kill: its kill line, with what its report printed before it."""
    rows = r.tasks if r else []
    row = next((t for t in rows if t.pid == k.pid), None)
    s = r.summary if r else None
    page_kb = _page_kb(row, k)
    oom_memcg = (s.oom_memcg if s else None) or (r.oom_memcg if r else None)
    task_memcg = (s.task_memcg if s else None) or (r.task_memcg if r else None)
    cpuset = (s.cpuset if s else None) or (r.cpuset if r else None)
    memcg = r.memcg if r else None
    message = k.message or (r.selection.message if r and r.selection else None)
    return OomKill(
        killer="kernel",
        victim=_victim(k, row, r, page_kb),
        host=line.host,
        time=line.wall,
        uptime_s=line.uptime_s,
        seq=line.seq,
        lineno=line.lineno,
        offset=line.offset,
        message=message,
        scope=_scope(s, oom_memcg, memcg, message),
        constraint=s.constraint if s else None,
        oom_memcg=oom_memcg,
        task_memcg=task_memcg,
        container=container_from_cgroup(task_memcg or oom_memcg) or _from_cpuset(cpuset),
        systemd_unit=systemd_unit_of(task_memcg or oom_memcg),
        cpuset=cpuset,
        trigger=r.trigger() if r else None,
        memcg=memcg,
        kernel_release=r.kernel_release if r else None,
        tasks=tuple(rows),
        tasks_complete=bool(r and r.columns is not None and r.table_state == "closed"),
        page_kb=page_kb,
        top_consumers=_top(rows, page_kb),
        selected_score=r.selection.score if r and r.selection else None,
        swap_free_kb=r.swap_free_kb if r else None,
        swap_total_kb=r.swap_total_kb if r else None,
    )


def _victim(k: KilledLine, row: TaskRow | None, r: Report | None, page_kb: int) -> Victim:
    s = r.summary if r else None
    uid = k.uid
    if uid is None and row is not None:
        uid = row.uid
    summary_is_victim = s is not None and (
        s.pid == k.pid or (s.task == k.comm and r is not None and r.kills == 1)
    )
    if uid is None and s is not None and summary_is_victim:
        uid = s.uid
    adj = k.oom_score_adj if k.oom_score_adj is not None else (row.oom_score_adj if row else None)
    rss_parts = (k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb)
    pgtables_kb = k.pgtables_kb
    if pgtables_kb is None and row is not None and row.pgtables_bytes is not None:
        pgtables_kb = row.pgtables_bytes // 1024
    return Victim(
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
        rss_kb=None if k.anon_rss_kb is None else sum(p or 0 for p in rss_parts),
    )


def earlyoom_kill(line: KernelLine, e: userspace.EarlyoomKill, reason: str | None) -> OomKill:
    """The record of earlyoom's signal to a process."""
    return OomKill(
        killer="earlyoom",
        victim=Victim(pid=e.pid, comm=e.comm, uid=e.uid, rss_kb=e.rss_kb),
        host=line.host,
        time=line.wall,
        lineno=line.lineno,
        signal=e.signal,
        reason=reason,
        selected_score=e.score,
    )


def oomd_kill(line: KernelLine, o: userspace.OomdKill, n: int | None) -> OomKill:
    """The record of systemd-oomd killing a cgroup (`n` processes, when the manager said)."""
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


def _page_kb(row: TaskRow | None, k: KilledLine) -> int:
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
