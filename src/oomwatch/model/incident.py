"""Incidents: what oomwatch tells people, as typed facts with one JSON form.

The builder fills the facts once. Everything a consumer needs beyond them (labels
for routing and Alertmanager, whether a kill is "unplaced", where it ran) is
computed here from the facts, so every consumer gets the same answer. `to_json`
and `from_json` are the one serialisation, used by the store, the webhook, the
JSON Lines sink and the HTTP API (docs/webhook.md, version 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from oomwatch.model.kernel import OomKill, Victim, where
from oomwatch.model.memory import CgroupMem, Severity, Snapshot, Status

Category = Literal["event", "condition"]
PAYLOAD_VERSION = 1


def fingerprint(*parts: str | None) -> str:
    """A short stable hash of what an incident is about."""
    text = "\x1f".join(p or "-" for p in parts)
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Explanation:
    """A headline, the reasons behind it, and what to do next."""

    headline: str
    details: tuple[str, ...]
    advice: tuple[str, ...]

    def as_text(self) -> str:
        """All of it as one paragraph of plain text."""
        return " ".join((self.headline, *self.details))

    def to_json(self) -> dict[str, Any]:
        """`{headline, details, advice}`."""
        return {
            "headline": self.headline,
            "details": list(self.details),
            "advice": list(self.advice),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Explanation | None:
        """The explanation back from its JSON (None stays None)."""
        if not d:
            return None
        return cls(
            str(d.get("headline") or ""),
            tuple(d.get("details") or ()),
            tuple(d.get("advice") or ()),
        )


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The machine an incident happened on."""

    hostname: str
    kernel: str
    boot_id: str


@dataclass(frozen=True, slots=True)
class ProcessDetails:
    """What the sampler knew of a victim while it was alive."""

    cmdline: tuple[str, ...] | None = None
    user: str | None = None
    rss_history: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True, slots=True)
class PodRef:
    """The Kubernetes pod (and container) a kill happened in."""

    namespace: str
    pod: str
    pod_uid: str | None = None
    container: str | None = None
    owner_kind: str | None = None
    owner_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> str | None:
        """`Kind/name` of the workload that owns the pod."""
        return f"{self.owner_kind}/{self.owner_name}" if self.owner_kind else None

    @property
    def where(self) -> str:
        """`container api of pod shop/api-7f9c (Deployment api)`."""
        text = f"pod {self.namespace}/{self.pod}"
        if self.container:
            text = f"container {self.container} of {text}"
        if self.owner_kind:
            text += f" ({self.owner_kind} {self.owner_name})"
        return text

    def to_json(self) -> dict[str, Any]:
        """The `kubernetes` part of a kill's JSON."""
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "pod_uid": self.pod_uid,
            "container": self.container,
            "owner": self.owner,
            "owner_kind": self.owner_kind,
            "owner_name": self.owner_name,
            "labels": dict(self.labels),
        }


@dataclass(frozen=True, slots=True)
class TopProcess:
    """One of the largest processes at the last sample."""

    pid: int
    comm: str
    rss_kb: int
    user: str | None
    cmdline: tuple[str, ...]
    cgroup: str | None


@dataclass(frozen=True, slots=True)
class MemoryNow:
    """System memory at the last sample, and the cgroup that hit its limit when known."""

    mem_total_kb: int
    mem_available_kb: int
    swap_total_kb: int
    swap_free_kb: int
    psi_some_avg10: float | None
    psi_full_avg10: float | None
    sampled_at: float | None = None
    cgroup: CgroupMem | None = None

    @classmethod
    def of(cls, snap: Snapshot, cgroup: CgroupMem | None = None) -> MemoryNow:
        """The figures of a snapshot."""
        return cls(
            snap.mem_total_kb,
            snap.mem_available_kb,
            snap.swap_total_kb,
            snap.swap_free_kb,
            snap.psi_some_avg10,
            snap.psi_full_avg10,
            snap.time,
            cgroup,
        )

    def to_json(self) -> dict[str, Any]:
        """Figures, `sampled_at` and `cgroup` as `{path, usage_bytes, limit_bytes}`."""
        d = dataclasses.asdict(self)
        c = self.cgroup
        d["cgroup"] = None if c is None else {k: d["cgroup"][k] for k in _CGROUP_KEYS}
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> MemoryNow | None:
        """Back from `to_json()`."""
        if not d:
            return None
        c = d.get("cgroup")
        return cls(
            int(d.get("mem_total_kb") or 0),
            int(d.get("mem_available_kb") or 0),
            int(d.get("swap_total_kb") or 0),
            int(d.get("swap_free_kb") or 0),
            d.get("psi_some_avg10"),
            d.get("psi_full_avg10"),
            d.get("sampled_at"),
            CgroupMem(c["path"], c["usage_bytes"], c["limit_bytes"], None) if c else None,
        )


_CGROUP_KEYS = ("path", "usage_bytes", "limit_bytes")


@dataclass(frozen=True, slots=True)
class KillFacts:
    """An OOM kill as the log told it, with what the agent knew around it."""

    kill: OomKill
    node: NodeInfo
    explanation: Explanation
    process: ProcessDetails = ProcessDetails()
    pod: PodRef | None = None
    memory_now: MemoryNow | None = None
    top_now: tuple[TopProcess, ...] = ()

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
            node=dataclasses.asdict(self.node),
            log_host=self.kill.host,
            explanation=self.explanation.to_json(),
            where=self.where,
            detected_at=inc.detected_at,
            group_alias=self.group_alias,
            memory_now=self.memory_now.to_json() if self.memory_now else None,
            top_consumers_now=[_top_json(t) for t in self.top_now],
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
        return {"kind": "log_gap", **dataclasses.asdict(self), "detected_at": inc.detected_at}

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


Facts = KillFacts | ConditionFacts | LogGapFacts | UnseenKillFacts
EVENT_FACTS: dict[str, type[KillFacts | LogGapFacts | UnseenKillFacts]] = {
    "oom_kill": KillFacts,
    "log_gap": LogGapFacts,
    "unseen_kills": UnseenKillFacts,
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


@dataclass(frozen=True, slots=True)
class Incident:
    """One thing to tell people about: an event (fires once) or a condition (opens, resolves)."""

    id: str
    key: str
    kind: str
    category: Category
    status: Status
    severity: Severity
    title: str
    detected_at: float
    facts: Facts
    followup: FollowUp | None = None
    drill: bool = False

    @property
    def host(self) -> str:
        """The node it happened on."""
        return self.facts.host

    @property
    def kill(self) -> KillFacts | None:
        """The kill's facts, for a kill."""
        return self.facts if isinstance(self.facts, KillFacts) else None

    @property
    def victim(self) -> Victim | None:
        """The killed process, for a kill."""
        return self.facts.kill.victim if isinstance(self.facts, KillFacts) else None

    @property
    def where(self) -> str | None:
        """Where it happened in words (kills), or the condition's subject."""
        f = self.facts
        if isinstance(f, KillFacts):
            return f.where
        return (
            f.subject
            if isinstance(f, ConditionFacts)
            else f.cgroup
            if isinstance(f, UnseenKillFacts)
            else None
        )

    @property
    def explanation(self) -> Explanation | None:
        """Why it happened and what to do, when the incident has one."""
        f = self.facts
        return f.explanation if isinstance(f, KillFacts | UnseenKillFacts) else None

    @property
    def unplaced(self) -> bool:
        """A kill whose cgroup the kernel did not print because it rate-limited the report."""
        return isinstance(self.facts, KillFacts) and self.facts.unplaced

    def labels(self) -> dict[str, str]:
        """The labels routes, silences and Alertmanager match on (no per-kill values)."""
        f = self.facts
        raw: dict[str, object] = {
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "host": self.host,
        }
        if isinstance(f, KillFacts):
            k, pod = f.kill, f.pod
            raw |= {
                "comm": k.victim.comm,
                "constraint": k.constraint,
                "cgroup": k.task_memcg,
                "container": (pod.container if pod else None)
                or (k.container.id if k.container else None),
            }
            if pod is not None:
                raw |= {"namespace": pod.namespace, "pod": pod.pod, "owner": pod.owner}
        elif isinstance(f, ConditionFacts):
            raw["cgroup"] = f.subject
        elif isinstance(f, UnseenKillFacts):
            raw["cgroup"] = f.cgroup
        return {k: str(v) for k, v in raw.items() if v is not None}

    def body(self) -> dict[str, Any]:
        """The `incident` object of the payload."""
        body = self.facts.to_json(self)
        if self.followup is not None:
            body["followup"] = self.followup.to_json()
        return body

    def to_json(self) -> dict[str, Any]:
        """The versioned payload (docs/webhook.md): the webhook's, the JSONL sink's, the API's."""
        out: dict[str, Any] = {
            "version": PAYLOAD_VERSION,
            "status": self.status,
            "key": self.key,
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "category": self.category,
            "severity": self.severity,
            "detected_at": self.detected_at,
            "incident": self.body(),
        }
        if self.drill:
            out["drill"] = True
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Incident:
        """The incident back from `to_json()`."""
        body = d["incident"]
        kind = str(d.get("kind") or body.get("kind"))
        category: Category = d.get("category") or ("event" if kind in EVENT_FACTS else "condition")
        factory = EVENT_FACTS.get(kind, ConditionFacts) if category == "event" else ConditionFacts
        return cls(
            id=d["id"],
            key=d["key"],
            kind=kind,
            category=category,
            status=d["status"],
            severity=d.get("severity") or body.get("severity") or "warning",
            title=d["title"],
            detected_at=float(d.get("detected_at") or body.get("detected_at") or 0.0),
            facts=factory.from_json(body),
            followup=FollowUp.from_json(body.get("followup")),
            drill=bool(d.get("drill")),
        )


def _top_json(t: TopProcess) -> dict[str, Any]:
    return {**dataclasses.asdict(t), "cmdline": list(t.cmdline)}


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
