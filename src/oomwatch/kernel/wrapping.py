"""Lines a paste or a mail client cut: how a kill line begins, and how its rest joins it."""

from __future__ import annotations

from oomwatch.kernel import userspace
from oomwatch.model import KernelLine

# Only a pasted or saved log is hand-wrapped; a live record is always whole.
WHOLE_RECORDS = ("kmsg", "journal-json")
MESSAGE_STARTS = (
    "oom-kill:",
    "Killed process",
    "Memory cgroup",
    "Out of memory",
    "oom_reaper:",
    "[",
    "CPU:",
    "Call Trace",
    "Tasks state",
    "memory:",
    "swap:",
    "kmem:",
    "Task in",
)
# What a line that tells of a kill holds; one that gives nothing is counted as unread.
KILL_MENTIONS = (
    "Killed process",
    "oom-kill:",
    "invoked oom-killer",
    "Kill process",
    "sending SIG",
    "killing process",
    *userspace.OOMD_STARTS,
)
# How a kill line begins: a line that is only the start of one was cut by a paste.
KILL_HEADS = (
    "Memory cgroup out of memory: Killed process ",
    "Out of memory: Killed process ",
    "Out of memory: Kill process ",
    "Killed process ",
    *userspace.OOMD_STARTS,
)


def mentions_kill(text: str) -> bool:
    """Whether a line tells of a kill (it must then give a record, or be counted unread)."""
    return any(m in text for m in KILL_MENTIONS)


def cut_head(line: KernelLine) -> bool:
    """Whether a saved log's line is only the beginning of a kill line."""
    text = line.text
    return (
        len(text) >= 3
        and line.fmt not in WHOLE_RECORDS
        and any(h.startswith(text) for h in KILL_HEADS)
    )


def starts_message(text: str) -> bool:
    """Whether a stampless line begins a kernel message of its own (not a wrapped tail)."""
    return text.startswith(MESSAGE_STARTS) or " invoked oom-killer:" in text


def join_wrapped(left: str, right: str) -> str:
    """Rejoin a kill line that a paste wrapped: numbers and `kB` never take a space."""
    if left[-1:].isdigit() or left.endswith((":", "-", "(")) or right.startswith(("kB", ")")):
        return left + right
    return left.rstrip() + " " + right.lstrip()
