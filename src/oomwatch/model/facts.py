"""The typed facts of incidents: kills, conditions, log gaps, unseen kills, follow-ups.

Each kind's facts hold what the builder knew once; `to_json` and `from_json` give
the `incident` part of the payload (docs/webhook.md, version 1) and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from oomwatch.model.kernel import OomKill, where
from oomwatch.model.parts import (
    Explanation,
    MemoryNow,
    NodeInfo,
    PodRef,
    ProcessDetails,
    TopProcess,
    fingerprint,
)
from oomwatch.model.plain import as_dict

if TYPE_CHECKING:
    from oomwatch.model.incident import Incident


@dataclass(frozen=True, slots=True)
class KillFacts:
    """An OOM kill as the log told it, with what the agent knew around it."""

    kill: OomKill
    node: NodeInfo
    explanation: Explanation
    process: ProcessDetails = field(default_factory=ProcessDetails)
    pod: PodRef | None = None
    memory_now: MemoryNow | None = None
    top_now: tuple[TopProcess, ...] = ()
    # False: read from a file anyone may write to, and the kernel's counter did not
    # count it (forged, or not of this boot); None: not checked (kmsg, journald's
    # kernel transport, or no counter on this kernel)
    confirmed: bool | None = None

    @property
    def host(self) -> str:
        """The node name."""
        return self.node.hostname

    @property
    def where(self) -> str:
        """Where the victim ran, in words: the pod when known, else what the cgroup says."""
        return self.pod.where if self.pod is not None else where(self.kill)

    @property
    def unplaced(self) -> bool:
        """A memcg kill whose report the kernel rate-limited, so its cgroup is unknown.

        A global kill has no cgroup to print: it is never "unplaced".
        """
        k = self.kill
        return (
            k.killer == "kernel"
            and not k.task_memcg
            and not k.oom_memcg
            and k.container is None
            and (k.message or "").startswith("Memory cgroup")
        )

    @property
    def group_alias(self) -> str:
        """The same process on the same host: how an unplaced kill finds its group."""
        return fingerprint("oom_kill", self.host, self.kill.victim.comm)

    def to_json(self, inc: Incident) -> dict[str, Any]:
        """The `incident` part of a kill's payload."""
        body = self.kill.to_dict()
        p = self.process
        body["victim"] = {
            **body["victim"],
            "cmdline": list(p.cmdline) if p.cmdline else None,
            "user": p.user,
            "rss_history": [{"time": t, "rss_kb": r} for t, r in p.rss_history],
        }
        body.update(
            host=self.host,
            node=as_dict(self.node),
            log_host=self.kill.host,
            explanation=self.explanation.to_json(),
            where=self.where,
            detected_at=inc.detected_at,
            group_alias=self.group_alias,
            memory_now=self.memory_now.to_json() if self.memory_now else None,
            top_consumers_now=[_top_json(t) for t in self.top_now],
            confirmed=self.confirmed,
        )
        if self.pod is not None:
            body["kubernetes"] = self.pod.to_json()
        return body

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> KillFacts:
        """Back from `to_json()`."""
        kill = OomKill.from_dict({**d, "host": d.get("log_host")})
        v = d.get("victim") or {}
        k8s = d.get("kubernetes")
        node = d.get("node") or {}
        return cls(
            kill=kill,
            node=NodeInfo(
                str(node.get("hostname") or d.get("host") or ""),
                str(node.get("kernel") or ""),
                str(node.get("boot_id") or ""),
            ),
            explanation=Explanation.from_json(d.get("explanation")) or Explanation("", (), ()),
            process=ProcessDetails(
                tuple(v["cmdline"]) if v.get("cmdline") else None,
                v.get("user"),
                tuple((h["time"], h["rss_kb"]) for h in v.get("rss_history") or ()),
            ),
            pod=_pod(k8s) if k8s else None,
            memory_now=MemoryNow.from_json(d.get("memory_now")),
            top_now=_tops(d.get("top_consumers_now")),
            confirmed=d.get("confirmed"),
        )


@dataclass(frozen=True, slots=True)
class ConditionFacts:
    """A memory condition: a value past its threshold (or back), with the memory around it."""

    kind: str
    subject: str
    value: float
    threshold: float
    opened_at: float
    host: str
    summary: str
    forecast_s: float | None = None
    usage_bytes: int | None = None
    limit_bytes: int | None = None
    memory: MemoryNow | None = None
    top_now: tuple[TopProcess, ...] = ()

    def to_json(self, inc: Incident) -> dict[str, Any]:
        """The `incident` part of a condition's payload."""
        body: dict[str, Any] = {
            "kind": self.kind,
            "subject": self.subject,
            "status": inc.status,
            "severity": inc.severity,
            "value": round(self.value, 2),
            "threshold": self.threshold,
            "opened_at": self.opened_at,
            "forecast_s": self.forecast_s,
            "usage_bytes": self.usage_bytes,
            "limit_bytes": self.limit_bytes,
            "host": self.host,
            "detected_at": inc.detected_at,
            "summary": self.summary,
        }
        if self.memory is not None:
            body["memory"] = self.memory.to_json()
            body["top_consumers_now"] = [_top_json(t) for t in self.top_now]
        return body

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ConditionFacts:
        """Back from `to_json()`."""
        return cls(
            kind=str(d.get("kind")),
            subject=str(d.get("subject")),
            value=float(d.get("value") or 0.0),
            threshold=float(d.get("threshold") or 0.0),
            opened_at=float(d.get("opened_at") or 0.0),
            host=str(d.get("host") or ""),
            summary=str(d.get("summary") or ""),
            forecast_s=d.get("forecast_s"),
            usage_bytes=d.get("usage_bytes"),
            limit_bytes=d.get("limit_bytes"),
            memory=MemoryNow.from_json(d.get("memory")),
            top_now=_tops(d.get("top_consumers_now")),
        )


@dataclass(frozen=True, slots=True)
class LogGapFacts:
    """Kernel log records overwritten before they were read."""

    source: str
    records_lost: int
    cursor: str | None
    host: str

    def to_json(self, inc: Incident) -> dict[str, Any]:
        """The `incident` part of a log gap's payload."""
        return {"kind": "log_gap", **as_dict(self), "detected_at": inc.detected_at}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LogGapFacts:
        """Back from `to_json()`."""
        return cls(
            str(d.get("source")),
            int(d.get("records_lost") or 0),
            d.get("cursor"),
            str(d.get("host") or ""),
        )


@dataclass(frozen=True, slots=True)
class UnseenKillFacts:
    """OOM kills the kernel counted that never appeared in the log."""

    missing: int
    counter: str
    counter_value: int
    cgroup: str | None
    host: str
    explanation: Explanation

    def to_json(self, inc: Incident) -> dict[str, Any]:
        """The `incident` part of an unseen-kills payload."""
        return {
            "kind": "unseen_kills",
            "missing": self.missing,
            "counter": self.counter,
            "counter_value": self.counter_value,
            "cgroup": self.cgroup,
            "host": self.host,
            "detected_at": inc.detected_at,
            "explanation": self.explanation.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> UnseenKillFacts:
        """Back from `to_json()`."""
        return cls(
            int(d.get("missing") or 0),
            str(d.get("counter")),
            int(d.get("counter_value") or 0),
            d.get("cgroup"),
            str(d.get("host") or ""),
            Explanation.from_json(d.get("explanation")) or Explanation("", (), ()),
        )


@dataclass(frozen=True, slots=True)
class BacklogFacts:
    """Kills already in the log when oomwatch first started here: one summary, not N alerts."""

    count: int
    kills: tuple[str, ...]  # one line each (time, victim, where), the first BACKLOG_SHOWN
    host: str
    explanation: Explanation

    def to_json(self, inc: Incident) -> dict[str, Any]:
        """The `incident` part of a kills-before-start payload."""
        return {
            "kind": "kills_before_start",
            "count": self.count,
            "kills": list(self.kills),
            "host": self.host,
            "detected_at": inc.detected_at,
            "explanation": self.explanation.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BacklogFacts:
        """Back from `to_json()`."""
        return cls(
            int(d.get("count") or 0),
            tuple(str(k) for k in d.get("kills") or ()),
            str(d.get("host") or ""),
            Explanation.from_json(d.get("explanation")) or Explanation("", (), ()),
        )


Facts = KillFacts | ConditionFacts | LogGapFacts | UnseenKillFacts | BacklogFacts
EVENT_FACTS: dict[str, type[KillFacts | LogGapFacts | UnseenKillFacts | BacklogFacts]] = {
    "oom_kill": KillFacts,
    "log_gap": LogGapFacts,
    "unseen_kills": UnseenKillFacts,
    "kills_before_start": BacklogFacts,
}


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Repeats of one key folded into one message: how many, which pids, over what time."""

    count: int
    pids: tuple[int, ...]
    incidents: tuple[str, ...]
    group_interval_s: float
    cgroup_unknown: int = 0

    def to_json(self) -> dict[str, Any]:
        """`{count, pids, incidents, group_interval_s, cgroup_unknown}`, pids as strings (v1)."""
        return {
            "count": self.count,
            "pids": [str(p) for p in self.pids],
            "incidents": list(self.incidents),
            "group_interval_s": self.group_interval_s,
            "cgroup_unknown": self.cgroup_unknown,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> FollowUp | None:
        """Back from `to_json()`."""
        if not d:
            return None
        return cls(
            int(d["count"]),
            tuple(int(p) for p in d.get("pids") or ()),
            tuple(d.get("incidents") or ()),
            float(d.get("group_interval_s") or 0.0),
            int(d.get("cgroup_unknown") or 0),
        )


def _top_json(t: TopProcess) -> dict[str, Any]:
    return {**as_dict(t), "cmdline": list(t.cmdline)}


def _tops(rows: Any) -> tuple[TopProcess, ...]:
    return tuple(
        TopProcess(
            r["pid"],
            r["comm"],
            r["rss_kb"],
            r.get("user"),
            tuple(r.get("cmdline") or ()),
            r.get("cgroup"),
        )
        for r in rows or ()
    )


def _pod(d: Mapping[str, Any]) -> PodRef:
    return PodRef(
        str(d["namespace"]),
        str(d["pod"]),
        d.get("pod_uid"),
        d.get("container"),
        d.get("owner_kind"),
        d.get("owner_name"),
        dict(d.get("labels") or {}),
    )
