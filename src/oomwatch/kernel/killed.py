"""The line that proves a kernel kill: `Killed process N (comm) total-vm:...`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from oomwatch.kernel.messages import plausible_adj

# --- "Memory cgroup out of memory: Killed process 21502 (python3) total-vm:..." -------

# The message before "Killed process" is one of the kernel's own few; the anchor
# keeps out lines that merely quote a kill (node-problem-detector's struct dumps).
_KILLED = re.compile(r"(?:(?P<msg>[A-Za-z][A-Za-z_ ()-]{0,60}): )?Killed process (?P<pid>\d+)")
_KILLED_FIELD = re.compile(
    r"(?P<key>total-vm|anon-rss|file-rss|shmem-rss|pgtables):(?P<kb>\d+)kB"
    r"|UID:(?P<uid>\d+)|oom_score_adj:(?P<adj>-?\d+)|, UID (?P<uid2>\d+)"
)


@dataclass(frozen=True, slots=True)
class KilledLine:
    """The line that proves a kill: the victim's pid, comm and sizes in kB."""

    pid: int
    comm: str | None
    message: str | None
    uid: int | None = None
    total_vm_kb: int | None = None
    anon_rss_kb: int | None = None
    file_rss_kb: int | None = None
    shmem_rss_kb: int | None = None
    pgtables_kb: int | None = None
    oom_score_adj: int | None = None
    complete: bool = True
    out_of_bounds: bool = False


def looks_like_kill(text: str) -> bool:
    """Whether the text starts like a kernel kill line (the kernel's own message, if any)."""
    m = _KILLED.match(text)
    return m is not None and _kernel_message(m.group("msg"))


def _kernel_message(message: str | None) -> bool:
    # "%s: Killed process": the kernel's %s is "Out of memory", "Memory cgroup out
    # of memory" or "Out of memory (oom_kill_allocating_task)"; other words before
    # it are someone quoting a kill
    return message is None or message.startswith(("Out of memory", "Memory cgroup out of memory"))


def _fields(tail: str) -> tuple[dict[str, int], int | None, int | None, bool]:
    """Sizes in kB, uid and oom_score_adj after the comm; True when a value is out of bounds."""
    sizes: dict[str, int] = {}
    uid = adj = None
    bounded = False
    for fm in _KILLED_FIELD.finditer(tail):
        if fm.group("key"):
            sizes[fm.group("key")] = int(fm.group("kb"))
        elif fm.group("uid") is not None or fm.group("uid2") is not None:
            uid = int(fm.group("uid") or fm.group("uid2"))
        elif fm.group("adj") is not None:
            adj = int(fm.group("adj"))
            if not plausible_adj(adj):
                adj, bounded = None, True
    return sizes, uid, adj, bounded


def parse_killed(text: str) -> KilledLine | None:
    """Every `Killed process` layout: upstream, RHEL6 (`, UID U, (comm)`), RHEL7 (`(comm), UID U,`).

    The comm is delimited by the last `) total-vm:` (or `), UID `, or a closing
    parenthesis at the end), since a comm may itself hold parentheses.
    """
    m = _KILLED.match(text)
    if m is None or not _kernel_message(m.group("msg")):
        return None
    pid = int(m.group("pid"))
    if pid <= 0:
        return None  # the kernel never kills pid 0: a cut or forged line
    rest = text[m.end() :]
    uid: int | None = None
    rhel6 = re.match(r", UID (\d+), ", rest)
    if rhel6:
        uid = int(rhel6.group(1))
        rest = rest[rhel6.end() - 1 :]
    if not rest.startswith(" ("):
        # nothing after the pid: the line may have been cut inside the pid itself
        return None if not rest else KilledLine(pid, None, m.group("msg"), uid, complete=False)
    body = rest[2:]
    end = -1
    for marker in (") total-vm:", "), UID "):
        end = body.rfind(marker)
        if end >= 0:
            break
    if end < 0 and body.endswith(")"):
        end = len(body) - 1
    if end < 0:
        return KilledLine(pid, None, m.group("msg"), uid, complete=False)
    comm = body[:end]
    tail = body[end + 1 :]
    sizes, found_uid, adj, bounded = _fields(tail)
    uid = found_uid if found_uid is not None else uid
    stripped = tail.rstrip()
    # nothing after the comm: a pre-2.6.32 kernel, or a wrap just after it
    complete = bool(stripped) and not stripped.endswith(",")
    complete = complete and ("total-vm" not in sizes or "file-rss" in sizes)
    return KilledLine(
        pid=pid,
        comm=comm,
        message=m.group("msg"),
        uid=uid,
        total_vm_kb=sizes.get("total-vm"),
        anon_rss_kb=sizes.get("anon-rss"),
        file_rss_kb=sizes.get("file-rss"),
        shmem_rss_kb=sizes.get("shmem-rss"),
        pgtables_kb=sizes.get("pgtables"),
        oom_score_adj=adj,
        complete=complete,
        out_of_bounds=bounded,
    )
