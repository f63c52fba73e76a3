"""Dedup and grouping: the decision table, and folding through the real outbox and a receiver."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomwatch.delivery.dispatcher import Dispatcher, Policy
from oomwatch.delivery.grouping import decide
from oomwatch.metrics import Metrics
from oomwatch.model import Incident, PodRef, Severity, Status
from oomwatch.notify.webhook import WebhookNotifier
from oomwatch.store import GroupState, Store
from oomwatch.testing import make_incident
from tests.servers import Recorder
from tests.waits import run_with, until

G, R = 300.0, 3600.0


def inc(
    kind: str = "oom_kill",
    status: Status = "firing",
    severity: Severity = "critical",
    n: int = 1,
    key: str = "k" * 20,
) -> Incident:
    """An incident of a kind; kills of pid `n` in pod p."""
    return make_incident(
        n,
        kind=kind,
        status=status,
        severity=severity,
        key=key,
        pod=PodRef("ns", "p"),
        detected_at=0.0,
    )


def state(
    last: float, status: str = "firing", severity: str = "critical", followup: float | None = None
) -> GroupState:
    """A group that last sent at `last`."""
    return GroupState(last, status, severity, followup)


@pytest.mark.parametrize(
    ("incident", "group", "now", "want"),
    [
        (inc(), None, 0, ("send", "first")),
        (inc(), state(0), 10, ("fold", "folded")),
        (inc(), state(0), G + 1, ("send", "new_after_interval")),
        (inc(), state(0, followup=G), G + 1, ("fold", "folded")),
        (inc("memory_low", severity="warning"), None, 0, ("send", "first")),
        (
            inc("memory_low", severity="warning"),
            state(0, severity="warning"),
            10,
            ("drop", "duplicate"),
        ),
        (
            inc("memory_low", severity="critical"),
            state(0, severity="warning"),
            10,
            ("send", "escalated"),
        ),
        (
            inc("memory_low", severity="warning"),
            state(0, severity="warning"),
            R + 1,
            ("send", "repeat_interval"),
        ),
        (inc("memory_low", status="resolved"), state(0), 10, ("send", "resolved")),
        (inc("memory_low"), state(0, status="resolved"), 10, ("send", "first")),
    ],
)
def test_decisions(
    incident: Incident, group: GroupState | None, now: float, want: tuple[str, str]
) -> None:
    """Why each delivery is sent, folded or dropped."""
    assert decide(incident, group, now, group_interval=G, repeat_interval=R) == want


@pytest.fixture
def hook() -> Iterator[Recorder]:
    """A webhook receiver."""
    r = Recorder().start()
    yield r
    r.stop()


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = time.time() + 5  # ahead of the real time the outbox stamps rows with

    def __call__(self) -> float:
        """The time now."""
        return self.now


def dispatcher_for(
    store: Store, hook: Recorder, clock: Clock, policy: Policy, metrics: Metrics | None = None
) -> Dispatcher:
    """A dispatcher with one webhook receiver `hook` and a test clock."""
    return Dispatcher(
        store,
        {"hook": WebhookNotifier(hook.url, name="hook")},
        metrics or Metrics(),
        policies={"hook": policy},
        clock=clock,
    )


def run_pass(d: Dispatcher) -> None:
    """One delivery pass."""
    asyncio.run(d.deliver_due())


def test_storm_is_one_message_then_one_followup(tmp_path: Path, hook: Recorder) -> None:
    """The first kill goes at once; the next ones wait for one follow-up with their pids."""
    clock = Clock()
    store = Store(tmp_path / "db")
    metrics = Metrics()

    def dispatcher() -> Dispatcher:
        return dispatcher_for(store, hook, clock, Policy(group_interval=G), metrics)

    store.record([inc(n=1)], ["hook"])
    start = clock.now
    run_pass(dispatcher())
    assert len(hook.received) == 1
    store.record([inc(n=n) for n in range(2, 14)], ["hook"])
    clock.now += 10
    run_pass(dispatcher())
    assert len(hook.received) == 1  # folded, nothing sent yet
    assert store.next_due("hook") == pytest.approx(start + G, abs=1)
    clock.now += G
    run_pass(dispatcher())
    assert len(hook.received) == 2
    follow = json.loads(hook.received[1].body)
    assert follow["incident"]["followup"]["count"] == 12
    assert follow["incident"]["followup"]["pids"] == [str(n) for n in range(2, 14)]
    assert follow["key"] == "k" * 20
    assert "12 more OOM kills of w in pod ns/p on node-1 in the last 5 min" in json.dumps(follow)
    run_pass(dispatcher())
    assert len(hook.received) == 2
    assert metrics.deliveries.labels("hook", "folded")._value.get() == 12


def test_failed_followup_is_retried_not_lost(tmp_path: Path, hook: Recorder) -> None:
    """A follow-up that fails keeps its folded kills and goes out later, with the same id."""
    clock = Clock()
    store = Store(tmp_path / "db")
    d = dispatcher_for(store, hook, clock, Policy(group_interval=G))
    store.record([inc(n=1)], ["hook"])
    run_pass(d)
    store.record([inc(n=2), inc(n=3)], ["hook"])
    run_pass(d)
    hook.responses = [(503, {}, b"down")]
    clock.now += G + 1
    run_pass(d)
    assert len(hook.received) == 2
    clock.now += 10
    run_pass(d)
    assert len(hook.received) == 3
    first, again = (json.loads(r.body) for r in hook.received[1:])
    assert first == again
    assert (
        hook.received[1].headers["Idempotency-Key"] == hook.received[2].headers["Idempotency-Key"]
    )


def test_rate_limit_paces_a_receiver(tmp_path: Path, hook: Recorder) -> None:
    """At most one message per `min_gap_s`: the second waits, it is not dropped."""
    clock = Clock()
    store = Store(tmp_path / "db")
    d = dispatcher_for(store, hook, clock, Policy(min_gap_s=1.0))
    store.record([inc(n=1, key="a" * 20), inc(n=2, key="b" * 20)], ["hook"])
    run_pass(d)
    assert len(hook.received) == 1
    assert store.next_due("hook") == pytest.approx(clock.now + 1.0)
    clock.now += 1.0
    run_pass(d)
    assert len(hook.received) == 2


def test_rate_limited_kills_join_the_reported_group(tmp_path: Path, hook: Recorder) -> None:
    """Storm kills printed without their cgroup join the group of the kill that had one.

    The follow-up says so, rather than starting a second group.
    """
    clock = Clock()
    store = Store(tmp_path / "db")
    d = dispatcher_for(store, hook, clock, Policy(group_interval=G))

    def kill(n: int, cgroup: str | None) -> Incident:
        return make_incident(n, cgroup=cgroup, key=("a" if cgroup else "b") * 20, detected_at=0.0)

    store.record([kill(1, "/cg")], ["hook"])
    run_pass(d)
    store.record([kill(n, None) for n in range(2, 6)], ["hook"])
    run_pass(d)
    assert len(hook.received) == 1
    clock.now += G + 1
    run_pass(d)
    assert len(hook.received) == 2
    follow = json.loads(hook.received[1].body)
    assert follow["key"] == "a" * 20
    assert follow["incident"]["followup"]["pids"] == ["2", "3", "4", "5"]
    # their cgroup is unknown, so the follow-up does not claim one
    assert follow["title"] == (
        "4 more OOM kills of w on node-1 in the last 5 min "
        "(pids 2, 3, 4, 5); the kernel printed no cgroup for them: its "
        "reports were rate-limited"
    )


def test_unplaced_has_one_definition_and_global_kills_are_never_rate_limited(
    tmp_path: Path, hook: Recorder
) -> None:
    """Global kills print no cgroup by nature: their follow-up never blames a rate limit."""
    glob = make_incident(1, cgroup=None, message="Out of memory", key="g" * 20, detected_at=0.0)
    memcg = make_incident(2, cgroup=None, key="m" * 20, detected_at=0.0)
    assert (glob.unplaced, memcg.unplaced) == (False, True)
    clock = Clock()
    store = Store(tmp_path / "db")
    d = dispatcher_for(store, hook, clock, Policy(group_interval=G))
    store.record([glob], ["hook"])
    run_pass(d)
    store.record(
        [
            make_incident(n, cgroup=None, message="Out of memory", key="g" * 20, detected_at=0.0)
            for n in range(3, 6)
        ],
        ["hook"],
    )
    run_pass(d)
    clock.now += G + 1
    run_pass(d)
    follow = json.loads(hook.received[1].body)
    assert follow["title"].startswith("3 more OOM kills of w on node-1")
    assert "rate-limited" not in follow["title"]
    assert follow["incident"]["followup"]["cgroup_unknown"] == 0


def test_max_age_applies_to_folded_repeats(tmp_path: Path, hook: Recorder) -> None:
    """Repeats folded for a follow-up that waited past the maximum age are dropped, not sent."""
    clock = Clock()
    store = Store(tmp_path / "db")
    metrics = Metrics()
    d = Dispatcher(
        store,
        {"hook": WebhookNotifier(hook.url, name="hook")},
        metrics,
        policies={"hook": Policy(group_interval=G)},
        clock=clock,
        max_age_s=400,
    )
    store.record([inc(n=1)], ["hook"])
    run_pass(d)
    store.record([inc(n=2), inc(n=3)], ["hook"])
    run_pass(d)
    hook.responses = [(503, {}, b"down")] * 3
    clock.now += G + 1  # the follow-up is due, and fails
    run_pass(d)
    assert len(hook.received) == 2
    hook.responses = []
    clock.now += 120
    run_pass(d)
    assert len(hook.received) == 2  # its repeats are 421 s old: not sent with a 400 s maximum
    assert metrics.dropped.labels("hook")._value.get() == 2
    states = [r[0] for r in store.db.execute("SELECT state FROM outbox ORDER BY id")]
    assert states == ["sent", "dropped", "dropped"]
    assert store.next_due("hook") is None


def test_a_lane_asks_for_follow_ups_only_when_one_can_be_due(
    tmp_path: Path, hook: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running lane knows its next follow-up: a kill's pass skips the query, a due one is sent.

    Only the lane sets its follow-ups, so the time it keeps is never later than the store's.
    """
    store = Store(tmp_path / "db")
    asked: list[float] = []
    real = Store.due_followups

    def counting(self: Store, now: float, receiver: str) -> list[str]:
        asked.append(now)
        return real(self, now, receiver)

    monkeypatch.setattr(Store, "due_followups", counting)
    d = Dispatcher(
        store,
        {"hook": WebhookNotifier(hook.url, name="hook")},
        Metrics(),
        policies={"hook": Policy(group_interval=0.5)},
    )

    async def body() -> None:
        await until(lambda: "hook" in d.lanes and d.lanes["hook"].followups_from == math.inf)
        asked.clear()
        store.record([inc(n=1)], ["hook"])
        d.wake()
        await until(lambda: len(hook.received) == 1)
        assert asked == []  # nothing could be due: the kill's pass did not ask
        store.record([inc(n=2), inc(n=3)], ["hook"])
        d.wake()
        await until(lambda: len(hook.received) == 2)  # the follow-up, when due
        assert asked
        await d.notifiers["hook"].aclose()

    run_with(d, body)
    follow = json.loads(hook.received[1].body)
    assert follow["incident"]["followup"]["pids"] == ["2", "3"]
