"""Records as plain data: dicts as `dataclasses.asdict` makes them, and compact JSON."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

_ATOMS = (str, int, float, bool, type(None))
_NAMES: dict[type, tuple[str, ...]] = {}  # one entry per dataclass type: a fixed set


def as_dict(obj: Any) -> dict[str, Any]:
    """The dict `dataclasses.asdict(obj)` gives; immutable leaves are shared, not deep-copied.

    `asdict` deep-copies every string and number of a payload: the incident body of
    a kill, built on the path from the kernel to the first receiver, cost 3x as much.
    """
    cls = type(obj)
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(obj))
    return {n: _value(getattr(obj, n)) for n in names}


def _value(v: Any) -> Any:
    if isinstance(v, _ATOMS):
        return v
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return as_dict(v)
    if isinstance(v, tuple) and hasattr(v, "_fields"):  # a named tuple, as asdict keeps it
        return type(v)(*[_value(x) for x in v])
    if isinstance(v, list | tuple):
        return type(v)(_value(x) for x in v)
    if isinstance(v, dict):
        return type(v)((_value(k), _value(x)) for k, x in v.items())
    return copy.deepcopy(v)


def compact(value: Any) -> str:
    """JSON as the notifiers send it and the store keeps it: compact, not ASCII-escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
