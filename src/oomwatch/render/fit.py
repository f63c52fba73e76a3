"""Fit a JSON payload into a receiver's size limit by cutting its largest parts.

Whoever runs a process chooses its name, command line and cgroup path, and a node
with 30,000 processes prints 30,000 task rows: a payload is never refused for size.
The largest string or list is cut (by the excess, a list to at most half) until
the whole fits; a cut string ends in the marker, a cut list keeps its first
entries, and `truncated` lists the paths cut.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from oomwatch.model.plain import compact
from oomwatch.render.escape import TRUNCATED

if TYPE_CHECKING:
    from oomwatch.model import Incident

__all__ = ["PAYLOAD_BYTES", "fit", "payload", "payload_bytes", "size"]
PAYLOAD_BYTES = 256 * 1024  # the webhook's, the JSONL line's and the API's, per incident
# the payload's envelope: what a receiver needs to tell incidents apart, never cut
ENVELOPE = frozenset(
    {"version", "status", "key", "id", "kind", "category", "severity", "detected_at", "drill"}
)
MAX_ROUNDS = 200  # each round cuts one part: far more than any payload needs
_NOTE_ROOM = 512  # bytes kept free for the `truncated` list itself


def size(value: Any) -> int:
    """Bytes of `value` as the notifiers send it."""
    return len(compact(value).encode())


def payload(inc: Incident, limit: int = PAYLOAD_BYTES, **extra: Any) -> dict[str, Any]:
    """The incident's v1 payload (with `extra` names), cut to `limit` bytes."""
    return fit({**inc.to_json(), **extra}, limit, keep=ENVELOPE | extra.keys())


def payload_bytes(inc: Incident, limit: int = PAYLOAD_BYTES) -> bytes:
    """`payload(inc, limit)` as the JSON the notifiers send (the incident's own text if it fits)."""
    raw = inc.json_text().encode()
    return raw if len(raw) <= limit else compact(payload(inc, limit)).encode()


def fit(
    payload: dict[str, Any], limit: int, *, keep: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`payload` cut to at most `limit` bytes of JSON; top-level names in `keep` are never cut."""
    if size(payload) <= limit:
        return payload
    out: dict[str, Any] = json.loads(json.dumps(payload))  # a deep copy, plain JSON
    cut: list[str] = []
    for _ in range(MAX_ROUNDS):
        if size(out) + _NOTE_ROOM <= limit:
            break
        found = _largest(out, keep)
        if found is None:
            break
        parent, name, path, value = found
        parent[name] = _cut(value, size(out) + _NOTE_ROOM - limit)
        if path not in cut:
            cut.append(path)
    if size(out) + _NOTE_ROOM > limit:
        # nothing left to halve (a huge key, say): only what `keep` protects goes
        out = {k: v for k, v in out.items() if k in keep}
        cut.append("*")
    out["truncated"] = _paths(cut)
    return out


def _paths(cut: list[str]) -> list[str]:
    """The cut paths, bounded themselves (a path holds keys the payload chose)."""
    room, shown = _NOTE_ROOM - 16, []
    for p in cut:
        room -= len(p.encode()) + 3
        if room < 0:
            break
        shown.append(p)
    return shown


def _largest(root: dict[str, Any], keep: frozenset[str]) -> tuple[Any, Any, str, Any] | None:
    """The largest string or list that can still be cut, with its parent and path."""
    best: tuple[int, Any, Any, str, Any] | None = None
    stack: list[tuple[Any, Any, str, Any]] = [
        (root, k, k, v) for k, v in root.items() if k not in keep
    ]
    while stack:
        parent, name, path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((value, k, f"{path}.{k}", v) for k, v in value.items())
            continue
        if isinstance(value, list):
            n = size(value)
            if len(value) > 1:
                if best is None or n > best[0]:
                    best = (n, parent, name, path, value)
                continue
            stack.extend((value, i, f"{path}[]", v) for i, v in enumerate(value))
            continue
        if isinstance(value, str) and len(value) > len(TRUNCATED) * 2:
            n = len(value.encode())
            if best is None or n > best[0]:
                best = (n, parent, name, path, value)
    return None if best is None else best[1:]


def _cut(value: Any, excess: int) -> Any:
    """A list's first entries, or a string's first characters with the marker.

    At least `excess` bytes go when that much is there to cut; a list keeps at
    most half of itself, so a list of large entries is cut again or descended into.
    """
    if isinstance(value, list):
        n = size(value)
        keep = int(len(value) * max(n - excess, 0) / n)
        return value[: min(keep, len(value) // 2)]
    text: str = value
    keep = max(len(text) - excess - len(TRUNCATED), len(TRUNCATED))
    return text[:keep] + TRUNCATED
