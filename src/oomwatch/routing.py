"""Which receivers get an incident: a small tree of matchers, in Alertmanager's vocabulary."""

from __future__ import annotations

from typing import Any

from oomwatch.config import RouteConfig
from oomwatch.incidents import Incident


def labels(inc: Incident) -> dict[str, str]:
    """The labels routes and silences match on."""
    b: dict[str, Any] = inc.body
    v = b.get("victim") or {}
    c = b.get("container") or {}
    k8s = b.get("kubernetes") or {}
    raw = {
        "kind": inc.kind,
        "severity": inc.severity,
        "status": inc.status,
        "host": b.get("host"),
        "namespace": k8s.get("namespace"),
        "pod": k8s.get("pod"),
        "container": k8s.get("container") or c.get("id"),
        "owner": k8s.get("owner"),
        "comm": v.get("comm"),
        "constraint": b.get("constraint"),
        "cgroup": b.get("task_memcg") or b.get("subject"),
    }
    return {k: str(x) for k, x in raw.items() if x is not None}


def route(tree: RouteConfig, inc: Incident) -> list[str]:
    """The receivers of an incident.

    The first matching child route decides (and the ones after it while it has
    `continue`); when no child matches, the node's own receivers.
    """
    return _walk(tree, labels(inc)) or []


def _walk(node: RouteConfig, lab: dict[str, str]) -> list[str] | None:
    if not all(m.matches(lab) for m in node.matchers):
        return None
    chosen: list[str] = []
    matched = False
    for child in node.routes:
        got = _walk(child, lab)
        if got is None:
            continue
        matched = True
        chosen += [r for r in got if r not in chosen]
        if not child.continue_:
            break
    return chosen if matched else list(node.receivers)
