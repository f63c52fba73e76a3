"""Which receivers get an incident: a small tree of matchers, in Alertmanager's vocabulary."""

from __future__ import annotations

from oomwatch.model import Incident
from oomwatch.receivers import RouteConfig


def labels(inc: Incident) -> dict[str, str]:
    """The labels routes and silences match on."""
    return inc.labels()


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
