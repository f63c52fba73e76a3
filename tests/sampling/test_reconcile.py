"""The kernel's OOM-kill counter against the kills read from the log."""

from __future__ import annotations

from oomwatch.kernel.scan import LogScanner
from oomwatch.model import CgroupMem, OomKill
from oomwatch.sampling.reconcile import CgroupReconciler, Reconciler


def kill(uptime: float) -> OomKill:
    """A kernel kill stamped `uptime`."""
    (k,) = LogScanner().scan_lines(
        [
            f"[{uptime:12.6f}] Out of memory: Killed process 9 (x) "
            "total-vm:1kB, anon-rss:1kB, file-rss:1kB"
        ]
    )
    return k


def test_every_counted_kill_seen() -> None:
    """Counter and log agree: nothing is missing."""
    r = Reconciler(10, None)
    r.saw(kill(5.0))
    assert r.check(11) == 0
    assert r.check(11) == 0
    assert r.state() == 11


def test_missing_kill_reported_once_after_two_checks() -> None:
    """A kill the log never showed is reported when two checks agree, and only once."""
    r = Reconciler(10, None)
    assert r.check(12) == 0  # the log may lag
    assert r.check(12) == 2
    assert r.check(12) == 0
    assert r.state() == 12


def test_fresh_start_ignores_replayed_history() -> None:
    """On a fresh start, kills replayed from before it are not counted as new."""
    r = Reconciler(3, count_after=100.0)
    r.saw(kill(50.0))  # history: before the agent started
    r.saw(kill(150.0))
    assert r.check(4) == 0
    assert r.check(4) == 0


def cg(path: str, kills: int) -> CgroupMem:
    """A limited cgroup with its oom_kill counter."""
    return CgroupMem(path, 1, 2, kills)


def kill_in(path: str) -> OomKill:
    """A kernel kill whose task was in `path`."""
    (k,) = LogScanner().scan_lines(
        [
            f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
            f"oom_memcg={path},task_memcg={path},task=x,pid=9,uid=0",
            "Memory cgroup out of memory: Killed process 9 (x) total-vm:1kB, anon-rss:1kB, "
            "file-rss:1kB, shmem-rss:0kB",
        ]
    )
    return k


def test_cgroup_counter_shortfall_reported_once_at_the_deepest() -> None:
    """A kill missing from the log in /pod/ctr is reported there, not again for /pod."""
    r = CgroupReconciler()
    assert r.check([cg("/pod", 0), cg("/pod/ctr", 0)]) == []
    r.saw(kill_in("/pod/ctr"))
    assert r.check([cg("/pod", 1), cg("/pod/ctr", 1)]) == []  # seen: nothing missing
    assert r.check([cg("/pod", 2), cg("/pod/ctr", 2)]) == []  # first sight of a shortfall
    (u,) = r.check([cg("/pod", 2), cg("/pod/ctr", 2)])
    assert (u.path, u.missing, u.counter) == ("/pod/ctr", 1, 2)
    assert r.check([cg("/pod", 2), cg("/pod/ctr", 2)]) == []


def test_cgroup_first_seen_is_the_baseline() -> None:
    """Kills before a cgroup was first seen are not this run's to report."""
    r = CgroupReconciler()
    assert r.check([cg("/a", 7)]) == []
    assert r.check([cg("/a", 7)]) == []
    r.saw(kill_in("/a"))
    assert r.check([cg("/a", 8)]) == []
    assert r.check([cg("/a", 8)]) == []


def test_kills_in_cgroups_no_longer_counted_are_forgotten() -> None:
    """A kill in a new cgroup each time (all gone by the next check) leaves nothing behind."""
    r = CgroupReconciler()
    assert r.check([cg("/pod", 0)]) == []
    for i in range(1000):
        r.saw(kill_in(f"/batch/job-{i}"))
    r.saw(kill_in("/pod/ctr"))  # under a counted cgroup: kept for its sum
    assert r.check([cg("/pod", 1)]) == []
    assert list(r._seen) == ["/pod/ctr"]
    assert r.check([cg("/pod", 1)]) == []  # and it still accounts for /pod's count
