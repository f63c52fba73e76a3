"""Parsers for the single kernel messages that make up an OOM report, one shape each.

Each function takes the message text (prefixes already removed) and returns a
small record, or None when the text is not that message. See
`kernel-oom-format.md` for the versions behind each shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oomwatch.model import TaskRow, Trigger

# --- "<comm> invoked oom-killer: gfp_mask=..., order=..., oom_score_adj=..." ---------

_HEADER = re.compile(r"(?:(?P<comm>.*?) )?invoked oom-killer: (?P<rest>.*)", re.S)
_GFP = re.compile(r"gfp_mask=(?P<hex>0x[0-9a-fA-F]+)(?:\((?P<flags>[^)]*)\))?")
_ORDER = re.compile(r"\border=(-?\d+)")
_SCORE_ADJ = re.compile(r"\boom_score_adj=(-?\d+)")
_NODEMASK = re.compile(r"\bnodemask=([^,\s]*)")


def parse_header(text: str) -> Trigger | None:
    """The `invoked oom-killer:` line of every kernel version."""
    m = _HEADER.fullmatch(text)
    if m is None:
        return None
    rest = m.group("rest")
    gfp = _GFP.search(rest)
    order = _ORDER.search(rest)
    adj = _SCORE_ADJ.search(rest)
    nodemask = _NODEMASK.search(rest)
    return Trigger(
        comm=m.group("comm") or None,
        gfp_mask=gfp.group("hex") if gfp else None,
        gfp_flags=gfp.group("flags") if gfp else None,
        order=int(order.group(1)) if order else None,
        oom_score_adj=int(adj.group(1)) if adj else None,
        nodemask=nodemask.group(1) if nodemask else None,
    )


# --- "CPU: 1 PID: 21502 Comm: python3 Not tainted 6.18.44 #1" -------------------------

_CPU = re.compile(
    r"(?:CPU: \d+ (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: |Pid: (?P<oldpid>\d+), comm: )"
    r"(?P<comm>.*?) (?:Not tainted|Tainted: [A-Z ]*?)\s*(?P<release>\d+\.\d+[\w.+~-]*)?",
    re.S,
)


@dataclass(frozen=True, slots=True)
class CpuLine:
    """The `CPU: ... PID: ... Comm: ...` line: the current (allocating) task."""

    pid: int
    comm: str
    release: str | None


def parse_cpu(text: str) -> CpuLine | None:
    """The dump_stack banner naming the task that is running the OOM killer."""
    m = _CPU.match(text)
    if m is None:
        return None
    pid = m.group("pid") or m.group("oldpid")
    return CpuLine(int(pid), m.group("comm"), m.group("release"))


# --- "<comm> cpuset=<name> mems_allowed=<nodes>" (before 5.0) ----------------------

_CPUSET = re.compile(r"(?P<comm>.*?) cpuset=(?P<cpuset>.*?) mems_allowed=(?P<mems>\S*)", re.S)


def parse_cpuset(text: str) -> str | None:
    """The cpuset name from the second line of a pre-5.0 report."""
    m = _CPUSET.fullmatch(text)
    return m.group("cpuset") if m else None


# --- "Task in X killed as a result of limit of Y" (2.6.29 - 4.19) ---------------------

_TASK_IN = re.compile(r"Task in (?P<task>.+?) killed as a result of limit of (?P<oom>.+)", re.S)


def parse_task_in(text: str) -> tuple[str, str] | None:
    """(task_memcg, oom_memcg) from the pre-5.0 memcg line."""
    m = _TASK_IN.fullmatch(text)
    return (m.group("task"), m.group("oom")) if m else None


# --- "memory: usage 980kB, limit 980kB, failcnt 4152239" ------------------------------

_COUNTER = re.compile(
    r"(?P<name>memory|memory\+swap|swap|kmem): usage (?P<usage>\d+)kB, limit (?P<limit>\d+)kB"
    r"(?:, failcnt (?P<failcnt>\d+))?"
)


def parse_counter(text: str) -> tuple[str, int, int, int | None] | None:
    """(counter name, usage kB, limit kB, failcnt) from a memcg page-counter line."""
    m = _COUNTER.match(text)
    if m is None:
        return None
    failcnt = m.group("failcnt")
    return (
        m.group("name"),
        int(m.group("usage")),
        int(m.group("limit")),
        int(failcnt) if failcnt is not None else None,
    )


# --- the task table ---------------------------------------------------------------------

_TABLE_HEADER = re.compile(r"\[\s*pid\s*\]\s+(?P<cols>.*\bname)\s*")
_ROW = re.compile(r"\[\s*(?P<pid>\d+)\]\s+(?P<rest>.*)", re.S)
_INT = re.compile(r"-?\d+")

_COLUMN_FIELDS = {
    "uid": "uid",
    "tgid": "tgid",
    "total_vm": "total_vm_pages",
    "rss": "rss_pages",
    "rss_anon": "rss_anon_pages",
    "rss_file": "rss_file_pages",
    "rss_shmem": "rss_shmem_pages",
    "pgtables_bytes": "pgtables_bytes",
    "nr_ptes": "nr_ptes",
    "swapents": "swapents",
    "oom_score_adj": "oom_score_adj",
}

# Column layouts by the number of numbers after the pid, for rows whose header was
# cut away (grep output). Seven numbers mean three different layouts (2.6.36-3.5,
# 3.6-3.19, 4.15-6.7) that agree on every column we read except the fifth and sixth.
_HEADERLESS_LAYOUTS: dict[int, tuple[str | None, ...]] = {
    6: ("uid", "tgid", "total_vm", "rss", None, None),
    7: ("uid", "tgid", "total_vm", "rss", None, None, "oom_score_adj"),
    8: ("uid", "tgid", "total_vm", "rss", "nr_ptes", None, "swapents", "oom_score_adj"),
    10: (
        "uid",
        "tgid",
        "total_vm",
        "rss",
        "rss_anon",
        "rss_file",
        "rss_shmem",
        "pgtables_bytes",
        "swapents",
        "oom_score_adj",
    ),
}


def parse_table_header(text: str) -> tuple[str, ...] | None:
    """The column names (after pid, name last) of a task-table header line."""
    m = _TABLE_HEADER.fullmatch(text)
    if m is None:
        return None
    return tuple(m.group("cols").split())


def is_row(text: str) -> bool:
    """Whether the text has the shape of a task-table row."""
    return _ROW.match(text) is not None


def parse_row(text: str, columns: tuple[str, ...] | None) -> TaskRow | None:
    """A task-table row, split on whitespace (columns are minimum widths, not positions).

    The name is the rest of the line: it may hold spaces (`Isolated Web Co`).
    Without the header, the layout is chosen by how many numbers the row holds.
    """
    m = _ROW.fullmatch(text)
    if m is None:
        return None
    pid = int(m.group("pid"))
    if columns is not None:
        n = len(columns) - 1  # every column but the name is a number
        parts = m.group("rest").split(None, n)
        if len(parts) != n + 1 or not all(_INT.fullmatch(p) for p in parts[:n]):
            return None
        layout: tuple[str | None, ...] = columns[:n]
        values, name = parts[:n], parts[n]
    else:
        parts = m.group("rest").split()
        count = 0
        while count < len(parts) - 1 and _INT.fullmatch(parts[count]):
            count += 1
        # a name made of digits would be read as one more number: prefer the longest
        # known layout that leaves a name
        for size in sorted(_HEADERLESS_LAYOUTS, reverse=True):
            if size <= count:
                break
        else:
            return None
        layout = _HEADERLESS_LAYOUTS[size]
        values = parts[:size]
        name = m.group("rest").split(None, size)[size]
        if name.strip().lstrip("-").isdigit():
            return None  # a row cut before its name: which column is which is unknown
    fields: dict[str, int] = {}
    for col, value in zip(layout, values, strict=True):
        target = _COLUMN_FIELDS.get(col) if col else None
        if target:
            fields[target] = int(value)
    if not plausible_adj(fields.get("oom_score_adj")) or pid <= 0:
        return None  # a row cut short and read in the wrong layout: no wrong number
    return TaskRow(pid=pid, name=name.strip(), **fields)


def plausible_adj(adj: int | None) -> bool:
    """Whether an oom_score_adj is one the kernel can print (-1000..1000)."""
    return adj is None or -1000 <= adj <= 1000


# --- "oom-kill:constraint=...,task_memcg=...,task=...,pid=...,uid=..." (5.0+) ---------

_SUMMARY_TAIL = re.compile(r",task=(?P<task>.*),pid=(?P<pid>\d+),uid=(?P<uid>\d+)\s*$", re.S)
_SUMMARY_KEYS = re.compile(
    r"(?:^|,)(?=(?:constraint|nodemask|cpuset|mems_allowed|oom_memcg|task_memcg)=|global_oom(?:,|$))"
)


@dataclass(frozen=True, slots=True)
class Summary:
    """The 5.0+ one-line summary of a kill."""

    constraint: str | None
    nodemask: str | None
    cpuset: str | None
    oom_memcg: str | None
    task_memcg: str | None
    global_oom: bool
    task: str | None
    pid: int | None
    uid: int | None


def summary_is_complete(text: str) -> bool:
    """Whether a summary line ends with its `,pid=N,uid=N` (else it was wrapped or split)."""
    return _SUMMARY_TAIL.search(text) is not None


def parse_summary(text: str) -> Summary | None:
    """The `oom-kill:` summary; the task name is taken up to `,pid=` counted from the right."""
    if not text.startswith("oom-kill:"):
        return None
    body = text[len("oom-kill:") :]
    task = pid = uid = None
    tail = _SUMMARY_TAIL.search(body)
    if tail:
        task = tail.group("task")
        pid = int(tail.group("pid"))
        uid = int(tail.group("uid"))
        body = body[: tail.start()]
    values: dict[str, str] = {}
    global_oom = False
    items = [item for item in _SUMMARY_KEYS.split(body) if item]
    if tail is None and items:
        items.pop()  # the line was cut: its last value may be cut too
    for item in items:
        key, sep, value = item.partition("=")
        if key == "global_oom" and not sep:
            global_oom = True
        elif sep:
            values[key] = value
    return Summary(
        constraint=values.get("constraint") or None,
        nodemask=values.get("nodemask") or None,
        cpuset=values.get("cpuset") or None,
        oom_memcg=values.get("oom_memcg") or None,
        task_memcg=values.get("task_memcg") or None,
        global_oom=global_oom,
        task=task,
        pid=pid,
        uid=uid,
    )


# --- "Out of memory: Kill process 1025 (icecast2) score 597 or sacrifice child" -------

_SELECT = re.compile(
    r"(?:(?P<msg>[^:]{1,80}): )?[Kk]ill process (?P<pid>\d+) \((?P<comm>.*)\) "
    r"score (?P<score>-?\d+) or (?:sacrifice child|a child)",
    re.S,
)


@dataclass(frozen=True, slots=True)
class Selection:
    """The pre-5.1 selection line: not a kill, the kill line follows it."""

    pid: int
    comm: str
    score: int
    message: str | None


def parse_selection(text: str) -> Selection | None:
    """The `Kill process N (comm) score S or sacrifice child` line."""
    m = _SELECT.match(text)
    if m is None:
        return None
    return Selection(int(m.group("pid")), m.group("comm"), int(m.group("score")), m.group("msg"))


# --- smaller lines ------------------------------------------------------------------------

_SWAP = re.compile(r"(?P<which>Free|Total) swap\s*=\s*(?P<kb>-?\d+)kB")
_GROUP = re.compile(r"Tasks in (?P<path>.+) are going to be killed due to memory\.oom\.group set")
_LIMIT_REACHED = re.compile(r"Memory limit reached of cgroup (?P<path>.+)")


def parse_swap(text: str) -> tuple[str, int] | None:
    """(`Free` or `Total`, kB) from the global report's swap lines."""
    m = _SWAP.match(text)
    return (m.group("which"), int(m.group("kb"))) if m else None


def parse_group_kill(text: str) -> str | None:
    """The cgroup of a `memory.oom.group` kill, whose every member is killed."""
    m = _GROUP.fullmatch(text)
    return m.group("path") if m else None


def parse_limit_reached(text: str) -> str | None:
    """The memcg named by `Memory limit reached of cgroup X` (a memcg OOM with no task)."""
    m = _LIMIT_REACHED.fullmatch(text)
    return m.group("path") if m else None
