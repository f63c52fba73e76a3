"""The parts incidents are made of: node, process, pod, memory, explanation, fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oomwatch.model.memory import CgroupMem, Snapshot
from oomwatch.model.plain import as_dict


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
    """What the sampler knew of a victim while it was alive; its user, else from its uid."""

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
        d = as_dict(self)
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
