"""Incidents: what oomwatch tells people, as typed facts with one JSON form.

The builder fills the facts once. Everything a consumer needs beyond them (labels
for routing and Alertmanager, whether a kill is "unplaced", where it ran) is
computed here from the facts, so every consumer gets the same answer. `to_json`
and `from_json` are the one serialisation, used by the store, the webhook, the
JSON Lines sink and the HTTP API (docs/webhook.md, version 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from oomwatch.model.facts import (
    EVENT_FACTS,
    BacklogFacts,
    ConditionFacts,
    Facts,
    FollowUp,
    KillFacts,
    UnseenKillFacts,
)
from oomwatch.model.kernel import Victim
from oomwatch.model.memory import Severity, Status
from oomwatch.model.parts import Explanation
from oomwatch.model.plain import compact

Category = Literal["event", "condition"]
PAYLOAD_VERSION = 1


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
    # body() as JSON, made at most once: the store writes it and the webhook sends it
    _text: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

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
        return f.explanation if isinstance(f, KillFacts | UnseenKillFacts | BacklogFacts) else None

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

    def body_text(self) -> str:
        """`body()` as compact JSON, made once for the store and the webhook."""
        if not self._text:
            self._text.append(compact(self.body()))
        return self._text[0]

    def to_json(self) -> dict[str, Any]:
        """The versioned payload (docs/webhook.md): the webhook's, the JSONL sink's, the API's."""
        out = self._envelope()
        out["incident"] = self.body()
        if self.drill:
            out["drill"] = True
        return out

    def json_text(self) -> str:
        """`to_json()` as compact JSON, the same text, with the body made once."""
        head = compact(self._envelope())
        drill = ',"drill":true' if self.drill else ""
        return f'{head[:-1]},"incident":{self.body_text()}{drill}}}'

    def _envelope(self) -> dict[str, Any]:
        return {
            "version": PAYLOAD_VERSION,
            "status": self.status,
            "key": self.key,
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "category": self.category,
            "severity": self.severity,
            "detected_at": self.detected_at,
        }

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
