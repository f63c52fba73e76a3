"""The kernel's OOM-kill counter against the kills read from the log."""

from __future__ import annotations

from oomwatch.agent import Reconciler
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill


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
