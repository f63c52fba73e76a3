"""The incident builder: kills, log gaps and conditions become enriched incidents.

Each incident has an `id` unique to the event (the same after a restart, so an
event read twice is stored once) and a `key`, the fingerprint of what it is about
(kind, host, container or cgroup, process name): the identity that notifiers use
to group repeats, and that is also stable across restarts.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from oomwatch.conditions import ConditionChange
from oomwatch.enrich.kubernetes import PodIndex, describe, where_text
from oomwatch.explain import explain, fmt_kb, where
from oomwatch.model import OomKill
from oomwatch.sampler import PidCache, Snapshot

Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class HostInfo:
    """The machine an incident happened on."""

    hostname: str
    kernel: str
    boot_id: str

    @classmethod
    def current(cls, boot_id: str, hostname: str | None = None) -> HostInfo:
        """This machine (the node name from the settings, when set, wins)."""
        node = hostname or os.environ.get("NODE_NAME") or socket.gethostname()
        return cls(node, platform.release(), boot_id)


@dataclass(frozen=True, slots=True)
class Incident:
    """One thing to tell people about."""

    id: str
    key: str
    kind: str
    status: Status
    severity: str
    title: str
    detected_at: float
    body: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The versioned webhook payload (docs/webhook.md)."""
        return {
            "version": 1,
            "status": self.status,
            "key": self.key,
            "id": self.id,
            "title": self.title,
            "incident": self.body,
        }


def fingerprint(*parts: str | None) -> str:
    """A short stable hash of what an incident is about."""
    text = "\x1f".join(p or "-" for p in parts)
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:20]


class IncidentBuilder:
    """Joins kills with the pid cache and the latest snapshot."""

    def __init__(self, host: HostInfo, cache: PidCache, pods: PodIndex | None = None) -> None:
        self.host = host
        self.cache = cache
        self.pods = pods
        self.snapshot: Snapshot | None = None

    def kill(self, k: OomKill) -> Incident:
        """An incident for one kill."""
        now = time.time()
        v = k.victim
        subject = _subject(k)
        key = fingerprint("oom_kill", self.host.hostname, subject, v.comm)
        if k.seq is not None:
            event = f"{self.host.boot_id}:{k.seq}"
        else:
            stamp = k.uptime_s if k.uptime_s is not None else (k.time.isoformat() if k.time else "")
            event = f"{self.host.boot_id}:{stamp}:{v.pid}:{k.task_memcg}"
        body = k.to_dict()
        cached = self.cache.get(v.pid) if v.pid is not None else None
        victim = dict(body["victim"])
        victim["cmdline"] = None
        victim["user"] = None
        victim["rss_history"] = []
        if cached is not None:
            info, history = cached
            if v.comm is None or info.comm == v.comm:
                victim["cmdline"] = list(info.cmdline) or None
                victim["user"] = info.user
                victim["rss_history"] = [{"time": t, "rss_kb": r} for t, r in history]
        body["victim"] = victim
        e = explain(k)
        body.update(
            host=self.host.hostname,
            node={
                "hostname": self.host.hostname,
                "kernel": self.host.kernel,
                "boot_id": self.host.boot_id,
            },
            log_host=k.host,
            explanation={
                "headline": e.headline,
                "details": list(e.details),
                "advice": list(e.advice),
            },
            where=where(k),
            detected_at=now,
            # the same process on the same host: how a storm's rate-limited kills, which
            # print no cgroup, find the group of the report that did
            group_alias=fingerprint("oom_kill", self.host.hostname, v.comm),
        )
        body.update(self._memory_now(k.oom_memcg))
        title = e.headline
        c = k.container
        if self.pods is not None and c is not None and (c.pod_uid or c.id):
            found = self.pods.lookup(c.pod_uid, c.id)
            if found is not None:
                body["kubernetes"] = describe(*found)
                body["where"] = where_text(body["kubernetes"])
                title = f"{title[:-1]} — {body['where']}."
        return Incident(
            f"kill:{fingerprint(event)}", key, "oom_kill", "firing", "critical", title, now, body
        )

    def gap(self, source: str, lost: int, cursor: str | None) -> Incident:
        """An incident for records the log overwrote before they were read."""
        now = time.time()
        title = (
            f"{lost} kernel log record{'s' if lost != 1 else ''} lost on "
            f"{self.host.hostname} ({source} overrun): OOM kills among them are counted "
            "by the kernel's counters below"
        )
        body = {
            "kind": "log_gap",
            "source": source,
            "records_lost": lost,
            "cursor": cursor,
            "host": self.host.hostname,
            "detected_at": now,
        }
        event = f"gap:{self.host.boot_id}:{cursor}:{lost}"
        return Incident(
            f"gap:{fingerprint(event)}",
            fingerprint("log_gap", self.host.hostname),
            "log_gap",
            "firing",
            "warning",
            title,
            now,
            body,
        )

    def unseen(self, missing: int, counter: str, subject: str | None, total: int) -> Incident:
        """Kills the kernel counted that never appeared in the log (rate limit, overrun)."""
        now = time.time()
        where_ = f" in {subject}" if subject else ""
        title = (
            f"{missing} OOM kill{'s' if missing != 1 else ''} not seen in the kernel log"
            f"{where_} on {self.host.hostname}"
        )
        body = {
            "kind": "unseen_kills",
            "missing": missing,
            "counter": counter,
            "counter_value": total,
            "cgroup": subject,
            "host": self.host.hostname,
            "detected_at": now,
            "explanation": {
                "headline": title,
                "details": [
                    f"The kernel's {counter} counter rose by more than the kills in the log. "
                    "The kernel rate-limits its OOM reports and the log can be overwritten "
                    "before it is read, so these kills have no details."
                ],
                "advice": [
                    "Run `oomwatch diagnose` and check the workloads in this cgroup or host."
                ],
            },
        }
        event = f"unseen:{self.host.boot_id}:{counter}:{subject}:{total}"
        return Incident(
            f"unseen:{fingerprint(event)}",
            fingerprint("unseen_kills", self.host.hostname, subject),
            "unseen_kills",
            "firing",
            "critical",
            title,
            now,
            body,
        )

    def condition(self, c: ConditionChange) -> Incident:
        """An incident for a condition opening, escalating or resolving."""
        now = time.time()
        key = fingerprint(c.kind, self.host.hostname, c.subject)
        title = c.summary
        if c.status == "resolved":
            title = f"Resolved: {c.summary}"
        elif c.forecast_s is not None:
            title += f"; at the current rate it reaches the limit in {_duration(c.forecast_s)}"
        body = {
            "kind": c.kind,
            "subject": c.subject,
            "status": c.status,
            "severity": c.severity,
            "value": round(c.value, 2),
            "threshold": c.threshold,
            "opened_at": c.opened_at,
            "forecast_s": c.forecast_s,
            "usage_bytes": c.usage_bytes,
            "limit_bytes": c.limit_bytes,
            "host": self.host.hostname,
            "detected_at": now,
            "summary": title,
        }
        if self.snapshot is not None:
            body["memory"] = self.snapshot.to_dict()
            body["top_consumers_now"] = _top_now(self.snapshot)
        event = f"{key}:{c.opened_at}:{c.status}:{c.severity}" + (f":{c.at}" if c.repeat else "")
        return Incident(
            f"cond:{fingerprint(event)}", key, c.kind, c.status, c.severity, title, now, body
        )

    def _memory_now(self, memcg: str | None) -> dict[str, Any]:
        snap = self.snapshot
        if snap is None:
            return {"memory_now": None, "top_consumers_now": []}
        cg = next((c for c in snap.cgroups if c.path == memcg), None) if memcg else None
        return {
            "memory_now": {
                **snap.to_dict(),
                "sampled_at": snap.time,
                "cgroup": None
                if cg is None
                else {
                    "path": cg.path,
                    "usage_bytes": cg.usage_bytes,
                    "limit_bytes": cg.limit_bytes,
                },
            },
            "top_consumers_now": _top_now(snap),
        }


def _subject(k: OomKill) -> str | None:
    c = k.container
    if c is not None and c.id:
        return c.id
    if c is not None and c.pod_uid:
        return c.pod_uid
    return k.task_memcg or k.oom_memcg


def _top_now(snap: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "pid": p.pid,
            "comm": p.comm,
            "rss_kb": p.rss_kb,
            "user": p.user,
            "cmdline": list(p.cmdline),
            "cgroup": p.cgroup,
        }
        for p in snap.top[:5]
    ]


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


__all__ = ["HostInfo", "Incident", "IncidentBuilder", "fingerprint", "fmt_kb"]
