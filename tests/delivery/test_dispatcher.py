"""The outbox and the retry loop against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from oomwatch.delivery.dispatcher import Dispatcher
from oomwatch.delivery.stages import backoff
from oomwatch.metrics import Metrics
from oomwatch.model import Incident
from oomwatch.notify.webhook import WebhookNotifier
from oomwatch.store import Store
from oomwatch.testing import make_incident
from tests.agentproc import free_port
from tests.servers import Received, Recorder

SECRET = "T0KEN-s3cret"


@pytest.fixture
def hook() -> Iterator[Recorder]:
    """A webhook receiver on 127.0.0.1."""
    r = Recorder().start()
    yield r
    r.stop()


def incident(i: int = 1) -> Incident:
    """A small kill incident."""
    return make_incident(i, key="k" * 20)


def deliver(
    store: Store, url: str, *, clock: float | None = None, max_age_s: float = 86400.0
) -> Dispatcher:
    """One pass of the dispatcher over what is due."""
    notifier = WebhookNotifier(url, timeout_s=2.0)
    d = Dispatcher(
        store,
        {"webhook": notifier},
        Metrics(),
        max_age_s=max_age_s,
        base_delay=0.01,
        clock=(lambda: clock) if clock else time.time,
    )

    async def once() -> None:
        await d.deliver_due()
        await notifier.aclose()

    asyncio.run(once())
    return d


def outbox(store: Store) -> list[tuple[str, int, str | None]]:
    """(state, attempts, last_error) of every outbox row."""
    db = sqlite3.connect(store.path)
    try:
        return db.execute("SELECT state, attempts, last_error FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()


def test_retry_after_500_keeps_the_idempotency_key(tmp_path: Path, hook: Recorder) -> None:
    """A 500 is retried; the retry carries the same Idempotency-Key; then it is sent once."""
    store = Store(tmp_path / "db")
    hook.responses = [(500, {}, b"boom")]
    assert store.record([incident()], ["webhook"]) != []
    deliver(store, f"{hook.url}/hook/{SECRET}")
    assert outbox(store)[0][:2] == ("pending", 1)
    time.sleep(0.05)
    deliver(store, f"{hook.url}/hook/{SECRET}")
    assert outbox(store)[0][:2] == ("sent", 2)
    keys = {r.headers["Idempotency-Key"] for r in hook.received}
    assert len(hook.received) == 2
    assert keys == {"kill:1/webhook"}


def test_429_waits_for_retry_after(tmp_path: Path, hook: Recorder) -> None:
    """A 429 is retried no sooner than its Retry-After."""
    store = Store(tmp_path / "db")
    hook.responses = [(429, {"Retry-After": "30"}, b"slow down")]
    store.record([incident()], ["webhook"])
    before = time.time()
    deliver(store, hook.url)
    nxt = store.next_due("webhook")
    assert nxt is not None
    assert nxt >= before + 30


def test_other_4xx_is_not_retried(tmp_path: Path, hook: Recorder) -> None:
    """A 400 fails for good, with the reason kept and the secret URL path left out."""
    store = Store(tmp_path / "db")
    hook.responses = [(400, {}, b"bad payload")]
    store.record([incident()], ["webhook"])
    deliver(store, f"{hook.url}/hook/{SECRET}")
    state, attempts, error = outbox(store)[0]
    assert (state, attempts) == ("failed", 1)
    assert error is not None
    assert "400 Bad Request: bad payload" in error
    assert SECRET not in error


def test_connection_refused_is_retried(tmp_path: Path) -> None:
    """Nobody listening: the delivery waits for a retry, without the secret in its error."""
    store = Store(tmp_path / "db")
    store.record([incident()], ["webhook"])
    deliver(store, f"http://127.0.0.1:{free_port()}/{SECRET}")
    state, attempts, error = outbox(store)[0]
    assert (state, attempts) == ("pending", 1)
    assert error is not None
    assert SECRET not in error


def test_too_old_is_dropped(tmp_path: Path, hook: Recorder) -> None:
    """A delivery older than the maximum age is dropped, not sent."""
    store = Store(tmp_path / "db")
    store.record([incident()], ["webhook"])
    d = deliver(store, hook.url, clock=time.time() + 100, max_age_s=10)
    assert outbox(store)[0][0] == "dropped"
    assert hook.received == []
    assert d.metrics.dropped.labels("webhook")._value.get() == 1


def test_same_incident_stored_once(tmp_path: Path) -> None:
    """The same incident id (read again after a restart) adds nothing to the outbox."""
    store = Store(tmp_path / "db")
    assert len(store.record([incident(), incident()], ["webhook", "console"])) == 1
    assert store.record([incident()], ["webhook"]) == []
    assert store.pending() == 2


def test_backoff_grows_and_is_capped() -> None:
    """Exponential with jitter, capped."""
    assert [backoff(n, rand=lambda: 1.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(30, rand=lambda: 0.0) == 30.0  # half the 60 s cap: back within a minute


def test_prune_keeps_what_is_pending(tmp_path: Path) -> None:
    """Old incidents go once delivered; one still waiting for delivery stays."""
    store = Store(tmp_path / "db")
    old = replace(make_incident(1, detected_at=100.0), id="kill:old")
    waiting = replace(make_incident(2, detected_at=100.0), id="kill:wait")
    store.record([old, waiting], ["webhook"])
    (d,) = [d for d in store.due(time.time(), "webhook") if d.incident.id == "kill:old"]
    store.sent(d.id)
    assert store.prune(older_than=200.0) == 1
    assert [i["id"] for i in store.incidents()] == ["kill:wait"]


def test_timeout_is_retried(tmp_path: Path) -> None:
    """A receiver that does not answer in time: a retryable timeout, no secret in it."""

    def late(_r: Received) -> tuple[int, dict[str, str], bytes]:
        time.sleep(2)
        return 200, {}, b"late"

    hang = Recorder(responder=late).start()
    try:
        store = Store(tmp_path / "db")
        store.record([incident()], ["webhook"])
        notifier = WebhookNotifier(f"{hang.url}/{SECRET}", timeout_s=0.3)
        d = Dispatcher(store, {"webhook": notifier}, Metrics(), base_delay=0.01)
        asyncio.run(d.deliver_due())
        state, attempts, error = outbox(store)[0]
        assert (state, attempts) == ("pending", 1)
        assert error is not None
        assert "no answer in 0.3 s" in error
        assert SECRET not in error
    finally:
        hang.stop()


def test_429_storm_is_delivered_once_after_waiting(tmp_path: Path, hook: Recorder) -> None:
    """Three 429s in a row, each with Retry-After: each wait is honoured, then one delivery."""
    store = Store(tmp_path / "db")
    hook.responses = [(429, {"Retry-After": "1"}, b"slow down")] * 3
    store.record([incident()], ["webhook"])
    now = time.time()
    for _ in range(3):
        deliver(store, hook.url, clock=now)
        nxt = store.next_due("webhook")
        assert nxt is not None
        assert nxt >= now + 1.0
        now = nxt
    deliver(store, hook.url, clock=now)
    assert outbox(store)[0][:2] == ("sent", 4)
    assert len(hook.received) == 4
    assert len({r.headers["Idempotency-Key"] for r in hook.received}) == 1


def test_one_pass_delivers_every_due_delivery_a_page_at_a_time(
    tmp_path: Path, hook: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 due deliveries: all sent once, in order, read from the outbox DUE_PAGE at a time."""
    from oomwatch.delivery.dispatcher import DUE_PAGE

    store = Store(tmp_path / "db")
    incs = [make_incident(i, key=f"{i:020d}") for i in range(25)]
    assert len(store.record(incs, ["webhook"])) == 25
    limits: list[int] = []
    real = store.due

    def due(now: float, receiver: str, limit: int = 100) -> list[Any]:
        limits.append(limit)
        return real(now, receiver, limit)

    monkeypatch.setattr(store, "due", due)
    deliver(store, f"{hook.url}/hook")
    assert [r.json()["id"] for r in hook.received] == [i.id for i in incs]
    assert {state for state, _, _ in outbox(store)} == {"sent"}
    assert set(limits) == {DUE_PAGE}
    assert len(limits) == 25 // DUE_PAGE + 1
