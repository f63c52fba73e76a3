"""The one retry loop: outbox rows to notifiers, exponential backoff with jitter, Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping

from oomwatch.metrics import Metrics
from oomwatch.notify import Notifier, NotifyError
from oomwatch.store import Delivery, Store

log = logging.getLogger("oomwatch.delivery")


def backoff(
    attempts: int,
    *,
    base: float = 1.0,
    cap: float = 300.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry number `attempts + 1`: exponential, capped, with full jitter."""
    ceiling = min(cap, base * 2.0**attempts)
    return ceiling / 2 + rand() * ceiling / 2


class Dispatcher:
    """Sends due deliveries, one concurrent lane per receiver, and records the outcome."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        metrics: Metrics,
        *,
        max_age_s: float = 86400.0,
        base_delay: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.notifiers = dict(notifiers)
        self.metrics = metrics
        self.max_age_s = max_age_s
        self.base_delay = base_delay
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New deliveries are in the outbox."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever."""
        while True:
            await self.deliver_due()
            nxt = self.store.next_due()
            timeout = None if nxt is None else max(nxt - self.clock(), 0.0)
            self._wake.clear()
            if timeout is not None and timeout <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def deliver_due(self) -> None:
        """One pass over what is due now."""
        lanes: dict[str, list[Delivery]] = defaultdict(list)
        for d in self.store.due(self.clock()):
            lanes[d.receiver].append(d)
        if lanes:
            await asyncio.gather(*(self._lane(ds) for ds in lanes.values()))
        self.metrics.queue_depth.set(self.store.pending())

    async def _lane(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            await self._deliver(d)

    async def _deliver(self, d: Delivery) -> None:
        now = self.clock()
        if now - d.created > self.max_age_s:
            self.store.give_up(d.id, "dropped", "older than the maximum age")
            self.metrics.dropped.labels(d.receiver).inc()
            log.warning(
                "dropped delivery of %s to %s: older than %.0f s",
                d.incident.id,
                d.receiver,
                self.max_age_s,
            )
            return
        notifier = self.notifiers.get(d.receiver)
        if notifier is None:
            self.store.give_up(d.id, "failed", "receiver no longer configured")
            return
        try:
            await notifier.send(d.incident, f"{d.incident.id}/{d.receiver}")
        except NotifyError as e:
            self.metrics.deliveries.labels(d.receiver, e.reason).inc()
            if not e.retryable:
                self.store.give_up(d.id, "failed", str(e))
                log.error("delivery of %s to %s failed for good: %s", d.incident.id, d.receiver, e)
                return
            delay = max(backoff(d.attempts, base=self.base_delay), e.retry_after or 0.0)
            self.store.retry(d.id, now + delay, str(e))
            log.warning(
                "delivery of %s to %s failed (%s); retry in %.1f s",
                d.incident.id,
                d.receiver,
                e,
                delay,
            )
            return
        self.store.sent(d.id)
        self.metrics.deliveries.labels(d.receiver, "ok").inc()
