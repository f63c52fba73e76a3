"""Thresholds open after their minimum duration, resolve past the hysteresis, forecast growth."""

from __future__ import annotations

from oomwatch.model import CgroupMem, Snapshot
from oomwatch.sampling.conditions import Conditions
from oomwatch.settings import Thresholds

MIB = 1 << 20


def snap(t: float, *, avail_pct: float = 50.0, cgroups: tuple[CgroupMem, ...] = ()) -> Snapshot:
    """A snapshot of a 1000 MiB machine at time t."""
    total = 1000 * 1024
    return Snapshot(
        time=t,
        mem_total_kb=total,
        mem_available_kb=int(total * avail_pct / 100),
        swap_total_kb=0,
        swap_free_kb=0,
        psi_some_avg10=None,
        psi_full_avg10=None,
        vmstat_oom_kill=0,
        cgroups=cgroups,
        top=(),
        processes=1,
    )


def test_memory_low_needs_its_duration_and_hysteresis() -> None:
    """Below 10% for 30 s opens; 5% escalates; above 13% for 30 s resolves."""
    c = Conditions(Thresholds())
    assert c.update(snap(0, avail_pct=8)) == []
    assert c.update(snap(20, avail_pct=8)) == []
    (opened,) = c.update(snap(30, avail_pct=8))
    assert (opened.kind, opened.status, opened.severity) == ("memory_low", "firing", "warning")
    (escalated,) = c.update(snap(40, avail_pct=4))
    assert (escalated.status, escalated.severity) == ("firing", "critical")
    assert c.update(snap(50, avail_pct=11)) == []  # inside the hysteresis band
    assert c.update(snap(60, avail_pct=20)) == []
    (resolved,) = c.update(snap(90, avail_pct=20))
    assert resolved.status == "resolved"
    assert resolved.opened_at == 30


def test_a_short_dip_opens_nothing() -> None:
    """A dip shorter than the minimum duration is not reported."""
    c = Conditions(Thresholds())
    assert c.update(snap(0, avail_pct=8)) == []
    assert c.update(snap(10, avail_pct=50)) == []
    assert c.update(snap(40, avail_pct=8)) == []


def test_cgroup_forecast_and_removal() -> None:
    """A cgroup growing steadily gets a time-to-limit; a removed cgroup resolves its condition."""
    c = Conditions(Thresholds(min_duration_s=0))
    changes = []
    for i in range(5):
        usage = (92 + i) * MIB
        changes += c.update(snap(i * 10.0, cgroups=(CgroupMem("/app", usage, 100 * MIB, 0),)))
    (opened,) = changes
    assert opened.kind == "cgroup_near_limit"
    assert opened.subject == "/app"
    (gone,) = c.update(snap(100.0))
    assert gone.status == "resolved"
    c2 = Conditions(Thresholds(min_duration_s=25))
    out = []
    for i in range(5):
        out += c2.update(snap(i * 10.0, cgroups=(CgroupMem("/app", (91 + i) * MIB, 100 * MIB, 0),)))
    (late,) = out
    assert late.forecast_s is not None
    assert 50 < late.forecast_s < 70  # 1 MiB per 10 s, 6 MiB left at 30 s: about 60 s


def test_still_firing_is_reported_again() -> None:
    """A condition that stays open is reported again every `renotify_s`, marked as a repeat."""
    c = Conditions(Thresholds(min_duration_s=0), renotify_s=100)
    (opened,) = c.update(snap(0, avail_pct=8))
    assert not opened.repeat
    assert c.update(snap(50, avail_pct=8)) == []
    (again,) = c.update(snap(100, avail_pct=8))
    assert again.repeat
    assert again.opened_at == opened.opened_at
