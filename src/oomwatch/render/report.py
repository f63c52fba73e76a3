"""Kills as text for people: one line each (`parse`), or a full report (`diagnose`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from oomwatch.incidents.explain import explain, fmt_kb
from oomwatch.model import OomKill, where
from oomwatch.notify.facts import user_text
from oomwatch.render.escape import terminal
from oomwatch.sampling.sampler import user_of


def when(k: OomKill) -> str:
    """The kill's time as printed in the log, else its uptime stamp."""
    if k.time is not None:
        return k.time.isoformat(sep=" ", timespec="seconds")
    if k.uptime_s is not None:
        return f"{k.uptime_s:.3f}s after boot"
    return "time unknown"


def one_line(k: OomKill) -> str:
    """A kill in one readable, terminal-safe line."""
    v = k.victim
    host = f" {k.host}" if k.host else ""
    if k.killer == "systemd-oomd":
        n = f"{k.processes_killed} processes" if k.processes_killed is not None else "processes"
        return terminal(f"{when(k)}{host} systemd-oomd killed {n} in {k.task_memcg}: {k.reason}")
    who = f"{v.comm} (pid {v.pid}"
    who += f", uid {v.uid})" if v.uid is not None else ")"
    parts = [f"{when(k)}{host} {k.killer} killed {who}"]
    if k.signal:
        parts[0] += f" with {k.signal}"
    if v.rss_kb is not None:
        parts.append(f"rss {fmt_kb(v.rss_kb)}")
    if k.scope == "memcg":
        limit = f" limit {fmt_kb(k.memcg.limit_kb)}" if k.memcg and not k.memcg.unlimited else ""
        parts.append(
            f"memcg {k.oom_memcg}{limit}" if k.oom_memcg else "memcg limit (cgroup not in log)"
        )
    elif k.scope:
        parts.append(f"{k.scope} OOM")
    if k.container is not None:
        parts.append(where(k))
    return terminal(", ".join(parts))


def print_report(
    console: Console,
    kills: Sequence[OomKill],
    *,
    source: str,
    local: bool,
    now: datetime | None = None,
) -> None:
    """The `diagnose` report: each kill with where, how much, why, the top consumers, what to do."""
    n = len(kills)
    title = Text(f"{n} OOM kill{'s' if n != 1 else ''} found in {source}", style="bold")
    console.print(title)
    for i, k in enumerate(kills, start=1):
        console.print()
        console.print(_kill_section(k, i, n, local=local, now=now))


def _kill_section(k: OomKill, i: int, n: int, *, local: bool, now: datetime | None) -> Group:
    v = k.victim
    e = explain(k)
    head = Text(f"[{i}/{n}] ", style="bold red")
    stamp = (
        k.time.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        if (local and k.time is not None and k.time.tzinfo is not None)
        else when(k)
    )
    head.append(terminal(stamp), style="bold")
    if now is not None and k.time is not None and k.time.tzinfo is not None:
        head.append(f"  ({_ago(now - k.time)} ago)", style="dim")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    if k.killer == "systemd-oomd":
        facts.add_row("Killer", "systemd-oomd")
        facts.add_row("Cgroup", Text(terminal(k.task_memcg or "?")))
    else:
        user = user_text(user_of(v.uid) if local else None, v.uid)
        victim = f"{v.comm} (pid {v.pid})" + (f", user {user}" if user else "")
        facts.add_row("Killed", Text(terminal(victim)))
        if k.killer != "kernel":
            facts.add_row("Killer", f"{k.killer}" + (f" ({k.signal})" if k.signal else ""))
        if v.rss_kb is not None:
            facts.add_row("Memory", _memory(k))
        if k.task_memcg or k.container:
            facts.add_row("Where", Text(terminal(_where_line(k))))
        facts.add_row("Ran out", Text(terminal(_ran_out(k))))
        if k.host:
            facts.add_row("Host", Text(terminal(k.host)))
    parts: list[object] = [head, Padding(facts, (0, 0, 0, 2))]
    why = Text(terminal(e.headline), style="bold")
    why.append("\n" + terminal(" ".join(e.details)), style="")
    parts.append(Padding(why, (1, 0, 0, 2)))
    if k.top_consumers:
        parts.append(Padding(_consumers(k, local=local), (1, 0, 0, 2)))
    todo = Text("What to do:", style="bold")
    for a in e.advice:
        todo.append("\n  - " + terminal(a))
    parts.append(Padding(todo, (1, 0, 0, 2)))
    return Group(*parts)  # type: ignore[arg-type]


def _memory(k: OomKill) -> str:
    v = k.victim
    parts = []
    for label, kb in (("anon", v.anon_rss_kb), ("file", v.file_rss_kb), ("shmem", v.shmem_rss_kb)):
        if kb is not None:
            parts.append(f"{label} {fmt_kb(kb)}")
    text = f"{fmt_kb(v.rss_kb)} resident"
    if parts:
        text += f" ({', '.join(parts)})"
    if v.swap_kb:
        text += f", {fmt_kb(v.swap_kb)} swapped"
    if v.total_vm_kb is not None:
        text += f"; {fmt_kb(v.total_vm_kb)} virtual"
    return text


def _where_line(k: OomKill) -> str:
    text = f"cgroup {k.task_memcg}" if k.task_memcg else ""
    c = k.container
    if c is not None:
        ids = []
        if c.id:
            ids.append(f"{c.runtime or 'container'} {c.id[:12]}")
        if c.pod_uid:
            ids.append(f"pod {c.pod_uid}" + (f" ({c.qos_class})" if c.qos_class else ""))
        text += ("  ·  " if text else "") + ", ".join(ids)
    return text


def _ran_out(k: OomKill) -> str:
    if k.scope == "memcg":
        m = k.memcg
        text = f"memory cgroup limit of {k.oom_memcg or 'the cgroup'}"
        if m is not None and not m.unlimited:
            text += f": {fmt_kb(m.usage_kb)} used of {fmt_kb(m.limit_kb)}"
            if m.usage_kb > m.limit_kb:
                text += f" ({fmt_kb(m.usage_kb - m.limit_kb)} over)"
            if m.failcnt:
                text += f", limit hit {m.failcnt} times"
        return text
    if k.scope == "global":
        text = "the whole machine (RAM"
        if k.swap_total_kb == 0:
            text += ", no swap)"
        elif k.swap_total_kb is not None:
            text += f" and swap: {fmt_kb(k.swap_free_kb)} of {fmt_kb(k.swap_total_kb)} free)"
        else:
            text += " and swap)"
        return text
    if k.scope:
        return f"{k.scope} constraint" + (f" (cpuset {k.cpuset})" if k.cpuset else "")
    return "not in the log (no report header or summary)"


def _consumers(k: OomKill, *, local: bool) -> Table:
    partial = "" if k.tasks_complete else " (partial: the log does not hold the whole table)"
    table = Table(
        title=f"Top memory consumers at the kill, from the kernel's task table{partial}",
        title_justify="left",
        box=box.SIMPLE,
        pad_edge=False,
    )
    table.add_column("PID", justify="right")
    table.add_column("NAME")
    table.add_column("USER")
    table.add_column("RSS", justify="right")
    table.add_column("SWAP", justify="right")
    table.add_column("OOM_SCORE_ADJ", justify="right")
    for c in k.top_consumers:
        user = (user_of(c.uid) if local else None) or ("" if c.uid is None else str(c.uid))
        style = "bold red" if c.pid == k.victim.pid else None
        table.add_row(
            str(c.pid),
            Text(terminal(c.name)),
            Text(terminal(user)),
            fmt_kb(c.rss_kb),
            fmt_kb(c.swap_kb) if c.swap_kb is not None else "",
            "" if c.oom_score_adj is None else str(c.oom_score_adj),
            style=style,
        )
    return table


def _ago(delta: object) -> str:
    seconds = int(getattr(delta, "total_seconds", lambda: 0)())
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
