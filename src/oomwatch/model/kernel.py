"""The records of the kernel log: lines in, OOM kill records out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from oomwatch.model.plain import as_dict

_R = TypeVar("_R")

LineFormat = Literal["kmsg", "dmesg", "dmesg-T", "syslog", "journal", "journal-json", "bare"]
Killer = Literal["kernel", "systemd-oomd", "earlyoom"]
Scope = Literal["memcg", "global", "cpuset", "mempolicy"]


# not frozen: built for every line read, and a frozen init costs six times as much
@dataclass(slots=True)
class KernelLine:
    """One logical log line with the metadata its format carried."""

    text: str
    fmt: LineFormat
    lineno: int = 0
    uptime_s: float | None = None
    wall: datetime | None = None
    host: str | None = None
    origin: str = "kernel"
    prio: int | None = None
    seq: int | None = None
    cursor: str | None = None
    offset: int | None = None

    @property
    def from_kernel(self) -> bool:
        """Whether the kernel itself printed this line (not a user-space program)."""
        return self.origin == "kernel"


@dataclass(frozen=True, slots=True)
class Container:
    """Container identity derived from a cgroup path alone."""

    runtime: str | None
    id: str | None
    pod_uid: str | None
    qos_class: str | None
    systemd_unit: str | None


@dataclass(frozen=True, slots=True)
class Victim:
    """The process the killer killed, as the log describes it."""

    pid: int | None
    comm: str | None
    uid: int | None = None
    total_vm_kb: int | None = None
    anon_rss_kb: int | None = None
    file_rss_kb: int | None = None
    shmem_rss_kb: int | None = None
    pgtables_kb: int | None = None
    oom_score_adj: int | None = None
    swap_kb: int | None = None
    rss_kb: int | None = None


@dataclass(frozen=True, slots=True)
class Trigger:
    """The task whose allocation failed and invoked the OOM killer."""

    comm: str | None
    pid: int | None = None
    gfp_mask: str | None = None
    gfp_flags: str | None = None
    order: int | None = None
    oom_score_adj: int | None = None
    nodemask: str | None = None


@dataclass(frozen=True, slots=True)
class MemcgUsage:
    """The `memory: usage ... limit ... failcnt` figures of the cgroup that ran out."""

    usage_kb: int
    limit_kb: int
    failcnt: int | None = None
    swap_usage_kb: int | None = None
    swap_limit_kb: int | None = None

    @property
    def unlimited(self) -> bool:
        """Whether the limit is the kernel's "no limit" sentinel."""
        return self.limit_kb >= UNLIMITED_KB


# The kernel prints "no limit" as PAGE_COUNTER_MAX pages in kB: 9007199254740988kB
# on x86-64 today, 18014398509481983kB on older kernels. Anything above 2**50 kB
# (1 EiB) is such a sentinel.
UNLIMITED_KB = 2**50


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One row of the kernel's task table, in the units the kernel printed."""

    pid: int
    name: str
    uid: int | None = None
    tgid: int | None = None
    total_vm_pages: int | None = None
    rss_pages: int | None = None
    rss_anon_pages: int | None = None
    rss_file_pages: int | None = None
    rss_shmem_pages: int | None = None
    pgtables_bytes: int | None = None
    nr_ptes: int | None = None
    swapents: int | None = None
    oom_score_adj: int | None = None


@dataclass(frozen=True, slots=True)
class Consumer:
    """A top memory consumer at kill time, in kB."""

    pid: int
    name: str
    rss_kb: int
    swap_kb: int | None
    uid: int | None
    oom_score_adj: int | None


@dataclass(frozen=True, slots=True)
class OomKill:
    """One kill by the kernel OOM killer or a user-space killer, with its context."""

    killer: Killer
    victim: Victim
    host: str | None = None
    time: datetime | None = None
    uptime_s: float | None = None
    seq: int | None = None
    lineno: int = 0
    offset: int | None = None
    message: str | None = None
    scope: Scope | None = None
    constraint: str | None = None
    oom_memcg: str | None = None
    task_memcg: str | None = None
    container: Container | None = None
    systemd_unit: str | None = None
    cpuset: str | None = None
    trigger: Trigger | None = None
    memcg: MemcgUsage | None = None
    kernel_release: str | None = None
    tasks: tuple[TaskRow, ...] = ()
    tasks_complete: bool = False
    tasks_cut: int = 0  # rows the incident left out (the smallest by rss)
    page_kb: int = 4
    top_consumers: tuple[Consumer, ...] = ()
    selected_score: int | None = None
    swap_free_kb: int | None = None
    swap_total_kb: int | None = None
    signal: str | None = None
    reason: str | None = None
    processes_killed: int | None = None

    kind: Literal["oom_kill"] = "oom_kill"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `oomwatch parse --format json` (and the webhook payload)."""
        return {
            "kind": self.kind,
            "killer": self.killer,
            "host": self.host,
            "time": self.time.isoformat() if self.time else None,
            "uptime_s": self.uptime_s,
            "seq": self.seq,
            "message": self.message,
            "scope": self.scope,
            "constraint": self.constraint,
            "oom_memcg": self.oom_memcg,
            "task_memcg": self.task_memcg,
            "container": as_dict(self.container) if self.container else None,
            "systemd_unit": self.systemd_unit,
            "cpuset": self.cpuset,
            "victim": as_dict(self.victim),
            "trigger": as_dict(self.trigger) if self.trigger else None,
            "memcg": as_dict(self.memcg) if self.memcg else None,
            "kernel_release": self.kernel_release,
            "page_kb": self.page_kb,
            "tasks": [as_dict(t) for t in self.tasks],
            "tasks_complete": self.tasks_complete,
            "tasks_cut": self.tasks_cut,
            "top_consumers": [as_dict(c) for c in self.top_consumers],
            "selected_score": self.selected_score,
            "swap_free_kb": self.swap_free_kb,
            "swap_total_kb": self.swap_total_kb,
            "signal": self.signal,
            "reason": self.reason,
            "processes_killed": self.processes_killed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OomKill:
        """The kill back from `to_dict()`'s shape (names it does not know are ignored)."""
        when = d.get("time")
        return cls(
            killer=d["killer"],
            victim=flat(Victim, d.get("victim") or {}),
            host=d.get("host"),
            time=datetime.fromisoformat(when) if when else None,
            uptime_s=d.get("uptime_s"),
            seq=d.get("seq"),
            message=d.get("message"),
            scope=d.get("scope"),
            constraint=d.get("constraint"),
            oom_memcg=d.get("oom_memcg"),
            task_memcg=d.get("task_memcg"),
            container=_opt(Container, d.get("container")),
            systemd_unit=d.get("systemd_unit"),
            cpuset=d.get("cpuset"),
            trigger=_opt(Trigger, d.get("trigger")),
            memcg=_opt(MemcgUsage, d.get("memcg")),
            kernel_release=d.get("kernel_release"),
            tasks=tuple(flat(TaskRow, t) for t in d.get("tasks") or ()),
            tasks_complete=bool(d.get("tasks_complete")),
            tasks_cut=int(d.get("tasks_cut") or 0),
            page_kb=int(d.get("page_kb") or 4),
            top_consumers=tuple(flat(Consumer, c) for c in d.get("top_consumers") or ()),
            selected_score=d.get("selected_score"),
            swap_free_kb=d.get("swap_free_kb"),
            swap_total_kb=d.get("swap_total_kb"),
            signal=d.get("signal"),
            reason=d.get("reason"),
            processes_killed=d.get("processes_killed"),
        )


def flat(cls: type[_R], d: dict[str, Any]) -> _R:
    """A flat record from a dict of its fields (extra names ignored, missing ones default)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in d.items() if k in names})


def _opt(cls: type[_R], d: dict[str, Any] | None) -> _R | None:
    return flat(cls, d) if d else None


def where(k: OomKill) -> str:
    """Where the victim ran, as specific as the log allows."""
    c = k.container
    if c is not None and c.id:
        pod = f" of pod {c.pod_uid}" if c.pod_uid else ""
        runtime = f"{c.runtime} " if c.runtime else ""
        return f"{runtime}container {c.id[:12]}{pod}"
    if c is not None and c.pod_uid:
        return f"pod {c.pod_uid}"
    if k.systemd_unit:
        return f"systemd unit {k.systemd_unit}"
    if k.task_memcg and k.task_memcg != "/":
        return f"cgroup {k.task_memcg}"
    return "the host"
