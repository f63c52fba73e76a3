"""Receivers are lanes of their own: a crashing, slow or rate-limited one never holds up another."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from oomwatch.delivery.dispatcher import Dispatcher
from oomwatch.errors import FailureReason, NotifyError
from oomwatch.metrics import Metrics
from oomwatch.store import Store
from oomwatch.testing import RecordingNotifier, make_incident
from tests.waits import run_with, until

pytestmark = pytest.mark.fault


def test_a_notifier_raising_keyerror_fails_its_delivery_only(tmp_path: Path) -> None:
    """A KeyError in one notifier is a `bug` failure of that delivery; the other gets all."""
    store = Store(tmp_path / "db")
    bad = RecordingNotifier("bad", raise_with=KeyError("ts"))
    good = RecordingNotifier("good")
    metrics = Metrics()
    d = Dispatcher(store, {"bad": bad, "good": good}, metrics)
    incidents = [make_incident(n, key=f"{n:020d}") for n in range(1, 4)]

    async def body() -> None:
        store.record(incidents, ["bad", "good"])
        d.wake()
        await until(lambda: len(good.sent) == 3)
        await until(lambda: metrics.deliveries.labels("bad", "bug")._value.get() == 3)
        # the lane goes on after the bug: a new incident still reaches the good receiver
        store.record([make_incident(9, key="9" * 20)], ["bad", "good"])
        d.wake()
        await until(lambda: len(good.sent) == 4)

    run_with(d, body)
    states = store.db.execute("SELECT receiver, state FROM outbox ORDER BY id").fetchall()
    assert sorted({s for r, s in states if r == "bad"}) == ["failed"]
    assert sorted({s for r, s in states if r == "good"}) == ["sent"]


def test_a_slow_receiver_does_not_delay_another(tmp_path: Path) -> None:
    """One receiver taking 5 s per message; the other gets each message at once."""
    store = Store(tmp_path / "db")
    slow = RecordingNotifier("slow", delay_s=5.0)
    fast = RecordingNotifier("fast")
    d = Dispatcher(store, {"slow": slow, "fast": fast}, Metrics())
    took: list[float] = []

    async def body() -> None:
        for n in range(1, 4):
            start = time.monotonic()
            store.record([make_incident(n, key=f"{n:020d}")], ["slow", "fast"])
            d.wake()
            await until(lambda n=n: len(fast.sent) == n)  # type: ignore[misc]
            took.append(time.monotonic() - start)

    run_with(d, body)
    assert max(took) < 1.0, took
    assert slow.sent == []  # still on its first message


def test_rate_limit_pauses_every_delivery_of_the_receiver(tmp_path: Path) -> None:
    """After a 429 with Retry-After, a second incident queued behind it waits too, restarts too."""
    store = Store(tmp_path / "db")
    now = [0.0]
    limited = RecordingNotifier(
        "r",
        fail_with=NotifyError(
            "429", retryable=True, reason=FailureReason.RATE_LIMITED, retry_after=30.0
        ),
    )

    def dispatcher() -> Dispatcher:
        return Dispatcher(store, {"r": limited}, Metrics(), clock=lambda: now[0], base_delay=0.01)

    store.record([make_incident(1, key="a" * 20)], ["r"])
    store.record([make_incident(2, key="b" * 20)], ["r"])
    t0 = now[0] = time.time()
    d = dispatcher()
    asyncio.run(d.deliver_due())
    assert limited.attempts == 1  # the second did not go out during the pause
    assert d.metrics.paused_until.labels("r")._value.get() >= t0 + 30.0
    limited.fail_with = None
    now[0] = t0 + 20.0
    asyncio.run(dispatcher().deliver_due())  # a restarted agent keeps the pause
    assert limited.attempts == 1
    now[0] = t0 + 31.0
    asyncio.run(dispatcher().deliver_due())
    assert [i.id for i in limited.sent] == ["kill:1", "kill:2"]


def test_a_receiver_that_answers_again_gets_its_backlog_at_once(tmp_path: Path) -> None:
    """After an outage, the first success is the probe: deliveries in backoff go at once."""
    store = Store(tmp_path / "db")
    down = NotifyError("refused", retryable=True, reason=FailureReason.CONNECTION)
    hook = RecordingNotifier("hook", fail_with=down)
    # a 30 s base: without the probe, the first three would wait 15-60 s more
    d = Dispatcher(store, {"hook": hook}, Metrics(), base_delay=30.0)

    async def body() -> None:
        store.record([make_incident(n, key=f"{n:020d}") for n in range(1, 4)], ["hook"])
        d.wake()
        await until(lambda: hook.attempts == 3)
        hook.fail_with = None  # it answers again
        store.record([make_incident(4, key="4" * 20)], ["hook"])
        d.wake()
        await until(lambda: len(hook.sent) == 4, timeout_s=5.0)

    run_with(d, body)
    assert sorted(i.id for i in hook.sent) == [f"kill:{n}" for n in range(1, 5)]
