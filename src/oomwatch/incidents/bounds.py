"""Bounds on what a kill's incident keeps of kernel text, whoever wrote that text.

A kernel line from a file or the journal may be megabytes long, and a node with
30,000 processes prints 30,000 task rows. An incident is stored, queued and sent:
it keeps every string to a path's length and the largest rows of the task table.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar

from oomwatch.model import OomKill
from oomwatch.render.escape import truncate

__all__ = ["FIELD_CHARS", "TASK_ROWS", "bounded"]
FIELD_CHARS = 4096  # PATH_MAX: a cgroup path the kernel prints is never longer
NAME_CHARS = 64  # a comm is 15 bytes; escaped, at most four times that
TASK_ROWS = 100
T = TypeVar("T")


def bounded(k: OomKill) -> OomKill:
    """`k` with every string at most FIELD_CHARS and the TASK_ROWS largest task rows."""
    tasks = k.tasks
    cut = 0
    if len(tasks) > TASK_ROWS:
        victim = k.victim.pid
        ranked = sorted(
            range(len(tasks)),
            key=lambda i: (tasks[i].pid != victim, -(tasks[i].rss_pages or 0)),
        )
        keep = sorted(ranked[:TASK_ROWS])  # the kernel's order, the victim's row always
        cut = len(tasks) - len(keep)
        tasks = tuple(tasks[i] for i in keep)
    rows = tuple(_strings(t, FIELD_CHARS) for t in tasks)
    top = tuple(_strings(c, FIELD_CHARS) for c in k.top_consumers)
    out = _strings(k, FIELD_CHARS)
    if out is k and not cut and _same(rows, k.tasks) and _same(top, k.top_consumers):
        return k  # nothing too long: the usual kill, on its way to the receivers
    return dataclasses.replace(out, tasks=rows, tasks_cut=k.tasks_cut + cut, top_consumers=top)


def _same(new: tuple[Any, ...], old: tuple[Any, ...]) -> bool:
    return len(new) == len(old) and all(a is b for a, b in zip(new, old, strict=True))


def _strings(obj: T, limit: int) -> T:
    """A dataclass with its long strings cut (names to NAME_CHARS), nested dataclasses too."""
    changes: dict[str, Any] = {}
    cls: type = type(obj)
    for name, most in _limits(cls, limit):
        v = getattr(obj, name)
        if isinstance(v, str):
            if len(v) > most:
                changes[name] = truncate(v, most)
        elif v is not None and (kind := type(v)) not in _SCALARS and dataclasses.is_dataclass(kind):
            nested = _strings(v, limit)
            if nested is not v:
                changes[name] = nested
    return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]


_SCALARS = frozenset({int, float, bool, tuple})  # tuples: the task rows, bounded above


@functools.cache
def _limits(cls: type, limit: int) -> tuple[tuple[str, int], ...]:
    """A dataclass's field names, each with the most characters it keeps."""
    return tuple(
        (f.name, NAME_CHARS if f.name in ("comm", "name") else limit)
        for f in dataclasses.fields(cls)
    )
