"""The incident builder: kills, log gaps, unseen kills and conditions become typed incidents.

Each incident has an `id` unique to the event (the same after a restart, so an
event read twice is stored once) and a `key`, the fingerprint of what it is about
(kind, host, container or cgroup, process name): the identity that notifiers use
to group repeats, and that is also stable across restarts. The builder sets the
category (event or condition) and fills the facts once.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from oomwatch.enrich.kubernetes import PodIndex, pod_ref
from oomwatch.incidents.bounds import bounded
from oomwatch.incidents.explain import explain
from oomwatch.model import (
    BacklogFacts,
    ConditionChange,
    ConditionFacts,
    Explanation,
    Incident,
    KillFacts,
    LogGapFacts,
    MemoryNow,
    NodeInfo,
    OomKill,
    ProcessDetails,
    Snapshot,
    TopProcess,
    UnseenKillFacts,
    fingerprint,
    where,
)
from oomwatch.sampling.sampler import PidCache, user_of

TOP_NOW = 5
BACKLOG_SHOWN = 20


class IncidentBuilder:
    """Joins kills with the pid cache, the pod index and the latest snapshot."""

    def __init__(self, node: NodeInfo, cache: PidCache, pods: PodIndex | None = None) -> None:
        self.node = node
        self.cache = cache
        self.pods = pods
        self.snapshot: Snapshot | None = None

    @property
    def hostname(self) -> str:
        """The node name incidents carry."""
        return self.node.hostname

    def kill(self, k: OomKill, *, drill: bool = False, confirmed: bool | None = None) -> Incident:
        """An incident for one kill (a drill's when `oomwatch drill` made it, or `drill`).

        `confirmed` False marks a kill from a file that the kernel's counter did not count.
        """
        now = time.time()
        drill = drill or is_drill(k)
        k = bounded(k)
        v = k.victim
        # an unconfirmed kill is its own group: never folded into a real one's repeats
        mark = "unconfirmed" if confirmed is False else None
        key = fingerprint("oom_kill", self.hostname, _subject(k), v.comm, *filter(None, [mark]))
        if k.seq is not None:
            event = f"{self.node.boot_id}:{k.seq}"
        else:
            stamp = k.uptime_s if k.uptime_s is not None else (k.time.isoformat() if k.time else "")
            event = f"{self.node.boot_id}:{stamp}:{v.pid}:{k.task_memcg}"
        e = explain(k)
        c = k.container
        found = None
        if self.pods is not None and c is not None and (c.pod_uid or c.id):
            found = self.pods.lookup(c.pod_uid, c.id)
        pod = pod_ref(*found) if found is not None else None
        facts = KillFacts(
            kill=k,
            node=self.node,
            explanation=e,
            process=self._details(k),
            pod=pod,
            memory_now=self._memory_now(k.oom_memcg),
            top_now=self._top_now(),
            confirmed=confirmed,
        )
        title = e.headline if pod is None else f"{e.headline[:-1]} — {pod.where}."
        if confirmed is False:
            title = f"Unconfirmed (the kernel did not count this kill): {title}"
        return Incident(
            f"kill:{fingerprint(event)}",
            key,
            "oom_kill",
            "event",
            "firing",
            "info" if drill else "critical",
            title,
            now,
            facts,
            drill=drill,
        )

    def gap(self, source: str, lost: int, cursor: str | None) -> Incident:
        """An incident for records the log overwrote before they were read."""
        title = (
            f"{lost} kernel log record{'s' if lost != 1 else ''} lost on "
            f"{self.hostname} ({source} overrun): OOM kills among them are counted "
            "by the kernel's counters below"
        )
        event = f"gap:{self.node.boot_id}:{cursor}:{lost}"
        return Incident(
            f"gap:{fingerprint(event)}",
            fingerprint("log_gap", self.hostname),
            "log_gap",
            "event",
            "firing",
            "warning",
            title,
            time.time(),
            LogGapFacts(source, lost, cursor, self.hostname),
        )

    def unseen(self, missing: int, counter: str, subject: str | None, total: int) -> Incident:
        """Kills the kernel counted that never appeared in the log (rate limit, overrun)."""
        where_ = f" in {subject}" if subject else ""
        title = (
            f"{missing} OOM kill{'s' if missing != 1 else ''} not seen in the kernel log"
            f"{where_} on {self.hostname}"
        )
        explanation = Explanation(
            title,
            (
                f"The kernel's {counter} counter rose by more than the kills in the log. "
                "The kernel rate-limits its OOM reports and the log can be overwritten "
                "before it is read, so these kills have no details.",
            ),
            ("Run `oomwatch diagnose` and check the workloads in this cgroup or host.",),
        )
        event = f"unseen:{self.node.boot_id}:{counter}:{subject}:{total}"
        return Incident(
            f"unseen:{fingerprint(event)}",
            fingerprint("unseen_kills", self.hostname, subject),
            "unseen_kills",
            "event",
            "firing",
            "critical",
            title,
            time.time(),
            UnseenKillFacts(missing, counter, total, subject, self.hostname, explanation),
        )

    def backlog(self, kills: list[OomKill], count: int, booted: datetime | None) -> Incident:
        """One summary of the kills already in the log when oomwatch first started here."""
        shown = tuple(_backlog_line(k, booted) for k in kills[:BACKLOG_SHOWN])
        s = "s" if count != 1 else ""
        title = f"{count} OOM kill{s} since boot on {self.hostname}, before oomwatch started"
        more = (f"... and {count - len(shown)} more (oomwatch diagnose lists them all)",)
        explanation = Explanation(
            title,
            shown + (more if count > len(shown) else ()),
            (
                "These happened before oomwatch ran here, so they were not sent one by one; "
                "run `oomwatch diagnose` on the host for each kill's report.",
            ),
        )
        first = kills[0] if kills else None
        stamp = f"{first.seq}:{first.uptime_s}:{first.victim.pid}" if first else ""
        return Incident(
            f"backlog:{fingerprint(self.node.boot_id, str(count), stamp)}",
            fingerprint("kills_before_start", self.hostname),
            "kills_before_start",
            "event",
            "firing",
            "info",
            title,
            time.time(),
            BacklogFacts(count, shown, self.hostname, explanation),
        )

    def condition(self, c: ConditionChange) -> Incident:
        """An incident for a condition opening, escalating, repeating or resolving."""
        key = fingerprint(c.kind, self.hostname, c.subject)
        title = c.summary
        if c.status == "resolved":
            title = f"Resolved: {c.summary}"
        elif c.forecast_s is not None:
            title += f"; at the current rate it reaches the limit in {_duration(c.forecast_s)}"
        snap = self.snapshot
        facts = ConditionFacts(
            kind=c.kind,
            subject=c.subject,
            value=c.value,
            threshold=c.threshold,
            opened_at=c.opened_at,
            host=self.hostname,
            summary=title,
            forecast_s=c.forecast_s,
            usage_bytes=c.usage_bytes,
            limit_bytes=c.limit_bytes,
            memory=MemoryNow.of(snap) if snap is not None else None,
            top_now=self._top_now(),
        )
        event = f"{key}:{c.opened_at}:{c.status}:{c.severity}" + (f":{c.at}" if c.repeat else "")
        return Incident(
            f"cond:{fingerprint(event)}",
            key,
            c.kind,
            "condition",
            c.status,
            c.severity,
            title,
            time.time(),
            facts,
        )

    def _details(self, k: OomKill) -> ProcessDetails:
        v = k.victim
        cached = self.cache.get(v.pid) if v.pid is not None else None
        if cached is None:
            return ProcessDetails(user=user_of(v.uid))  # too short-lived to be sampled
        info, history = cached
        if v.comm is not None and info.comm != v.comm:
            return ProcessDetails(user=user_of(v.uid))  # the pid was reused by another process
        return ProcessDetails(info.cmdline or None, info.user, tuple(history))

    def _memory_now(self, memcg: str | None) -> MemoryNow | None:
        snap = self.snapshot
        if snap is None:
            return None
        cg = next((c for c in snap.cgroups if c.path == memcg), None) if memcg else None
        return MemoryNow.of(snap, cg)

    def _top_now(self) -> tuple[TopProcess, ...]:
        snap = self.snapshot
        if snap is None:
            return ()
        return tuple(
            TopProcess(p.pid, p.comm, p.rss_kb, p.user, p.cmdline, p.cgroup)
            for p in snap.top[:TOP_NOW]
        )


def _subject(k: OomKill) -> str | None:
    c = k.container
    if c is not None and c.id:
        return c.id
    if c is not None and c.pod_uid:
        return c.pod_uid
    return k.task_memcg or k.oom_memcg


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _backlog_line(k: OomKill, booted: datetime | None) -> str:
    """`2026-12-02 14:02:11 api (pid 123) in container 4f2a…`: one backlog kill."""
    when = k.time
    if when is None and k.uptime_s is not None and booted is not None:
        when = booted + timedelta(seconds=k.uptime_s)
    if when is not None:
        stamp = f"{when.astimezone():%Y-%m-%d %H:%M:%S}"
    elif k.uptime_s is not None:
        stamp = f"{k.uptime_s:.0f} s after boot"
    else:
        stamp = "at a time the log does not say"
    who = k.victim.comm or "a process"
    pid = f" (pid {k.victim.pid})" if k.victim.pid is not None else ""
    return f"{stamp}: {who}{pid} in {where(k)}"


# `oomwatch drill` runs its hog in a memory cgroup named so; `--page` adds "page-".
DRILL_CGROUP = "oomwatch-drill-"
DRILL_PAGES = DRILL_CGROUP + "page-"


def is_drill(k: OomKill) -> bool:
    """Whether a kill is one `oomwatch drill` made (its memory cgroup's name says)."""
    path = k.oom_memcg or k.task_memcg or ""
    return path.rsplit("/", 1)[-1].startswith(DRILL_CGROUP)


def drill_pages(inc: Incident) -> bool:
    """Whether a drill asked to reach the receivers that wake people (`drill --page`)."""
    k = inc.kill
    path = (k.kill.oom_memcg or k.kill.task_memcg or "") if k is not None else ""
    return path.rsplit("/", 1)[-1].startswith(DRILL_PAGES)
