"""Plain-language explanations of OOM kills: what ran out, why this victim, what to do.

One wording engine for `diagnose`, the agent's incidents and every notifier. Pure;
the text holds untrusted names (comm, cgroup paths) verbatim, and each sink
escapes them for its own format.
"""

from __future__ import annotations

from oomwatch.model import Consumer, Explanation, OomKill


def fmt_kb(kb: int | None) -> str:
    """A size in kB as a person reads it (`980 KiB`, `48.0 MiB`, `1.5 GiB`)."""
    if kb is None:
        return "unknown"
    if kb < 1024:
        return f"{kb} KiB"
    if kb < 1024 * 1024:
        return f"{kb / 1024:.1f} MiB"
    if kb < 1024**3:
        return f"{kb / 1024 / 1024:.1f} GiB"
    return f"{kb / 1024**3:.1f} TiB"


def explain(k: OomKill) -> Explanation:
    """Explain one kill in sentences a person on call can act on."""
    if k.killer == "systemd-oomd":
        return _explain_oomd(k)
    if k.killer == "earlyoom":
        return _explain_earlyoom(k)
    v = k.victim
    name = v.comm or f"pid {v.pid}"
    details: list[str] = []
    advice: list[str] = []
    by_scope = _SCOPES.get(k.scope or "", _unknown_scope)
    headline = by_scope(k, name, details, advice)
    details.extend(_trigger(k))
    details.append(_why_victim(k))
    advice.append(
        "Protect processes that must survive with oom_score_adj -1000 (systemd: "
        "OOMScoreAdjust=-1000); give expendable ones a positive value."
    )
    return Explanation(headline, tuple(details), tuple(advice))


def _memcg_scope(k: OomKill, name: str, details: list[str], advice: list[str]) -> str:
    v = k.victim
    limit_kb = k.memcg.limit_kb if k.memcg and not k.memcg.unlimited else None
    group = k.oom_memcg or "its memory cgroup"
    limit = f" of {fmt_kb(limit_kb)}" if limit_kb is not None else ""
    if k.memcg is not None and limit_kb is not None:
        m = k.memcg
        if m.usage_kb > limit_kb:
            details.append(
                f"Usage was {fmt_kb(m.usage_kb)}, {fmt_kb(m.usage_kb - limit_kb)} above the "
                "limit, which happens when the limit is lowered below what the group "
                "already uses (a write to memory.max or memory.limit_in_bytes)."
            )
            advice.append(
                "Raise the limit back above the group's usage, or shrink the "
                "group's memory before lowering the limit."
            )
        else:
            details.append(
                f"Usage had reached {fmt_kb(m.usage_kb)} of the {fmt_kb(limit_kb)} limit."
            )
    if k.oom_memcg and k.task_memcg and k.oom_memcg != k.task_memcg:
        details.append(
            f"The limit belongs to the parent group {k.oom_memcg}, not to the victim's own "
            f"{k.task_memcg}: everything under the parent shares it (for a pod, all its "
            "containers together)."
        )
    advice.append(
        f"If this is {name}'s normal working set, raise the limit (Kubernetes: "
        "resources.limits.memory; systemd: MemoryMax=; Docker: --memory)."
    )
    advice.append(
        "If it should need less, look for growth: a leak, an unbounded cache or "
        "queue, or a load spike."
    )
    return f"{name} (pid {v.pid}) was killed because {group} reached its memory limit{limit}."


def _global_scope(k: OomKill, name: str, details: list[str], advice: list[str]) -> str:
    if k.swap_total_kb == 0:
        details.append("There is no swap, so nothing could be paged out.")
    elif k.swap_total_kb is not None and k.swap_free_kb is not None:
        details.append(f"Swap: {fmt_kb(k.swap_free_kb)} free of {fmt_kb(k.swap_total_kb)}.")
        if k.swap_free_kb >= k.swap_total_kb:
            details.append(
                "Swap was unused: the memory needed could not be swapped "
                "(kernel memory), or swapping is held back (vm.swappiness=0)."
            )
    advice.append(
        "Find what grew: compare the top consumers with their usual size; add "
        "memory or swap, or put limits on the largest services so that one of "
        "them cannot exhaust the machine."
    )
    return f"{name} (pid {k.victim.pid}) was killed because the whole machine ran out of memory."


def _node_scope(k: OomKill, name: str, details: list[str], advice: list[str]) -> str:
    what = f"cpuset {k.cpuset}" if k.scope == "cpuset" and k.cpuset else "its memory policy"
    details.append("Other NUMA nodes may still have had free memory.")
    advice.append("Check the cpuset or NUMA policy that confines this workload.")
    pid = k.victim.pid
    return f"{name} (pid {pid}) was killed because the memory nodes allowed by {what} ran out."


def _unknown_scope(k: OomKill, name: str, details: list[str], _advice: list[str]) -> str:
    details.append(
        "The log does not show whether a cgroup limit or the whole machine ran "
        "out: the report's header and summary are not in it."
    )
    return f"{name} (pid {k.victim.pid}) was killed by the kernel's OOM killer."


_SCOPES = {
    "memcg": _memcg_scope,
    "global": _global_scope,
    "cpuset": _node_scope,
    "mempolicy": _node_scope,
}


def _trigger(k: OomKill) -> list[str]:
    """What the report says of the allocation that invoked the killer."""
    t = k.trigger
    if t is None:
        return []
    v = k.victim
    if t.pid is not None and t.pid == v.pid:
        who = "the victim itself"
    else:
        who = (t.comm or "a task the log does not name") + (
            f" (pid {t.pid})" if t.pid is not None else ""
        )
    out = [f"The allocation that failed was made by {who}."]
    if t.order is not None and t.order > 0:
        out.append(
            f"It asked for an order-{t.order} block ({k.page_kb << t.order} KiB "
            "contiguous): such "
            "requests can fail from fragmentation while smaller pieces are still free."
        )
    elif t.order == -1:
        out.append("order=-1: someone invoked the OOM killer by hand (SysRq-f).")
    return out


def _why_victim(k: OomKill) -> str:
    v = k.victim
    name = v.comm or f"pid {v.pid}"
    rule = (
        "The kernel kills the process with the highest badness: resident memory plus swap "
        "plus page tables, shifted by oom_score_adj (-1000 never, +1000 first)."
    )
    # The kill line's RSS counts pages charged elsewhere too (shared files), so it
    # can exceed the cgroup's limit; it is not compared with the limit.
    size = fmt_kb(v.rss_kb) if v.rss_kb is not None else None
    if not k.top_consumers:
        used = f" {name} held {size} resident when it was killed." if size else ""
        return rule + used
    ranked = sorted(k.top_consumers, key=_badness_pages, reverse=True)
    biggest = ranked[0]
    adj = v.oom_score_adj
    if biggest.pid == v.pid:
        held = size or fmt_kb(biggest.rss_kb)
        text = f"{rule} {name} was the largest process listed, with {held} resident."
    else:
        text = (
            f"{rule} {name} was not the largest: {biggest.name} (pid {biggest.pid}) held "
            f"{fmt_kb(biggest.rss_kb)}"
        )
        if biggest.oom_score_adj == -1000:
            text += ", but oom_score_adj -1000 protects it."
        elif adj is not None and biggest.oom_score_adj is not None and adj > biggest.oom_score_adj:
            text += (
                f", but {name}'s oom_score_adj of {adj} (against "
                f"{biggest.oom_score_adj}) made the kernel prefer it."
            )
        else:
            text += "; swap and page tables count too."
    if adj == 1000:
        text += " oom_score_adj 1000 marks it as the first to kill (Kubernetes gives it to "
        text += "BestEffort pods)."
    return text


def _badness_pages(c: Consumer) -> int:
    return c.rss_kb + (c.swap_kb or 0)


def _explain_oomd(k: OomKill) -> Explanation:
    n = f"{k.processes_killed} processes" if k.processes_killed is not None else "every process"
    headline = f"systemd-oomd killed {n} in {k.task_memcg}."
    details = (
        f"Reason: {k.reason}." if k.reason else "systemd-oomd gave no reason.",
        "systemd-oomd acts on memory pressure (PSI) or swap use before the kernel's OOM "
        "killer would, and kills whole cgroups.",
    )
    advice = (
        "If the kill was premature, raise ManagedOOMMemoryPressureLimit= or set "
        "ManagedOOMPreference=avoid on the unit; if not, give the workload more memory "
        "or a MemoryMax= so that it is contained.",
    )
    return Explanation(headline, details, advice)


def _explain_earlyoom(k: OomKill) -> Explanation:
    v = k.victim
    sig = k.signal or "a signal"
    size = f" ({fmt_kb(v.rss_kb)} resident)" if v.rss_kb is not None else ""
    headline = f"earlyoom sent {sig} to {v.comm} (pid {v.pid}){size}."
    details = (
        f"Reason: {k.reason}."
        if k.reason
        else "earlyoom acts when available memory "
        "and swap fall below its thresholds, before the kernel's OOM killer.",
    )
    advice = (
        "Tune earlyoom's -m/-s thresholds or --avoid/--prefer patterns if it chose wrongly; "
        "otherwise find what used the memory.",
    )
    return Explanation(headline, details, advice)
