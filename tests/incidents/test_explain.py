"""The plain-language explanation says what ran out, why this victim, and what to do."""

from __future__ import annotations

from datetime import datetime

from oomwatch.incidents.explain import explain, fmt_kb
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill
from tests.conftest import CORPUS


def kills_of(case: str) -> list[OomKill]:
    """The kernel kills in one corpus case."""
    with (CORPUS / f"{case}.log").open("rb") as f:
        kills = LogScanner(reference=datetime(2024, 12, 31)).scan_stream(f)
        return [k for k in kills if k.killer == "kernel"]


def test_sizes() -> None:
    """Sizes read as a person reads them."""
    assert [fmt_kb(v) for v in (980, 49152, 5193968, None)] == [
        "980 KiB",
        "48.0 MiB",
        "5.0 GiB",
        "unknown",
    ]


def test_limit_lowered_below_usage() -> None:
    """A memory.max write below usage is named as the cause, with the excess."""
    e = explain(kills_of("021-nixos65-memory-max-write-two-kills-no-killable")[0])
    assert e.headline.startswith(".thunderbird-wr (pid 265606) was killed because ")
    assert "reached its memory limit of 476.8 MiB" in e.headline
    assert any(
        "Usage was 701.6 MiB, 224.7 MiB above the limit, which happens when the limit "
        "is lowered" in d
        for d in e.details
    )
    assert any("Raise the limit back above the group's usage" in a for a in e.advice)


def test_pod_level_limit() -> None:
    """When the limit belongs to the pod, not the container, it says so."""
    e = explain(kills_of("013-aks-ubuntu2204-cgv2-containerd-syslog")[0])
    text = " ".join(e.details)
    assert "The limit belongs to the parent group /kubepods.slice/" in text
    assert "for a pod, all its containers together" in text
    assert "oom_score_adj 1000 marks it as the first to kill" in text
    assert "stress-ng-vm was the largest process listed" in text


def test_global_oom_with_high_order_request() -> None:
    """A global OOM names the machine; an order-3 request is explained as fragmentation."""
    e = explain(kills_of("020-ubuntu1604-i915-order3-virtualbox")[0])
    assert e.headline == (
        "VirtualBox (pid 3110) was killed because the whole machine ran out of memory."
    )
    text = " ".join(e.details)
    assert "made by Xorg (pid 1172)" in text
    assert "order-3 block (32 KiB contiguous)" in text
    assert "Swap: 999.0 MiB free of 999.0 MiB. Swap was unused" in text


def test_oom_score_adj_preference() -> None:
    """A smaller victim chosen for its oom_score_adj is explained as such."""
    lines = [
        "[  1.0] app invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        "[  1.0] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj "
        "name",
        "[  1.0] [    10]  1000    10    50000    20000   200000        0           900 app",
        "[  1.0] [    11]     0    11    90000    40000   300000        0             0 db",
        "[  1.0] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,"
        "global_oom,task_memcg=/,task=app,pid=10,uid=1000",
        "[  1.0] Out of memory: Killed process 10 (app) total-vm:200000kB, anon-rss:80000kB, "
        "file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:196kB oom_score_adj:900",
    ]
    (k,) = LogScanner().scan_lines(lines)
    text = " ".join(explain(k).details)
    assert "app was not the largest: db (pid 11) held 156.2 MiB" in text
    assert "app's oom_score_adj of 900 (against 0) made the kernel prefer it" in text


def test_bare_kill_line_says_what_is_unknown() -> None:
    """With only a kill line, it says the log does not tell what ran out."""
    (k,) = LogScanner().scan_lines(
        ["Killed process 5 (x) total-vm:10kB, anon-rss:8kB, file-rss:0kB"]
    )
    e = explain(k)
    assert e.headline == "x (pid 5) was killed by the kernel's OOM killer."
    assert any("does not show whether a cgroup limit or the whole machine" in d for d in e.details)
    assert "x held 8 KiB resident when it was killed." in " ".join(e.details)


def test_userspace_killers() -> None:
    """earlyoom and systemd-oomd get their own wording."""
    kills = list(
        LogScanner().scan_lines(
            [
                'sending SIGTERM to process 42 uid 1000 "tail": badness 860, VmRSS 3145 MiB',
                "Dec 18 19:34:56 d systemd-oomd[840]: Killed /user.slice/a.scope due to memory "
                "pressure for /user.slice being 51.07% > 50.00% for > 20s with reclaim activity",
                "Dec 18 19:34:56 d systemd[1837]: a.scope: systemd-oomd killed 12 process(es) "
                "in this unit.",
            ]
        )
    )
    assert [explain(k).headline for k in kills] == [
        "earlyoom sent SIGTERM to tail (pid 42) (3.1 GiB resident).",
        "systemd-oomd killed 12 processes in /user.slice/a.scope.",
    ]
