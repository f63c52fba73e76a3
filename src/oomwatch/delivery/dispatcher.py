"""The one retry loop: outbox rows to notifiers, exponential backoff with jitter, Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from oomwatch.delivery.grouping import decide, followup, unplaced
from oomwatch.incidents import Incident
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


@dataclass(frozen=True, slots=True)
class Policy:
    """How a receiver groups, repeats and paces its messages."""

    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    min_gap_s: float = 0.0  # Slack: at most one message a second per channel


class Dispatcher:
    """The delivery stages for every receiver: group/dedup, rate limit, send once, retry, record.

    One concurrent lane per receiver, so a slow receiver does not hold up the others.
    """

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        metrics: Metrics,
        *,
        max_age_s: float = 86400.0,
        base_delay: float = 1.0,
        policies: Mapping[str, Policy] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.notifiers = dict(notifiers)
        self.metrics = metrics
        self.max_age_s = max_age_s
        self.base_delay = base_delay
        self.policies = dict(policies or {})
        self.clock = clock
        self._next_slot: dict[str, float] = {}
        self.busy = False  # sent something since the agent last trimmed its memory
        self._wake = asyncio.Event()

    def policy(self, receiver: str) -> Policy:
        """The receiver's policy (the defaults when it has none of its own)."""
        return self.policies.get(receiver) or Policy()

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
                await asyncio.sleep(0.05)  # due again at once: rate-limited; do not spin
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def deliver_due(self) -> None:
        """One pass over what is due now: follow-ups first, then new deliveries."""
        lanes: dict[str, list[Delivery]] = defaultdict(list)
        for d in self.store.due(self.clock()):
            lanes[d.receiver].append(d)
        followups: dict[str, list[str]] = defaultdict(list)
        for receiver, key in self.store.due_followups(self.clock()):
            followups[receiver].append(key)
        receivers = set(lanes) | set(followups)
        if receivers:
            await asyncio.gather(
                *(self._lane(r, followups.get(r, []), lanes.get(r, [])) for r in receivers)
            )
        self.metrics.queue_depth.set(self.store.pending())

    async def _lane(self, receiver: str, keys: list[str], deliveries: list[Delivery]) -> None:
        for key in keys:
            await self._followup(receiver, key)
        for d in deliveries:
            await self._deliver(d)

    def _paced(self, receiver: str) -> float | None:
        """When the rate limit lets the next message out, if not now."""
        gap = self.policy(receiver).min_gap_s
        if gap <= 0:
            return None
        now = self.clock()
        slot = self._next_slot.get(receiver, 0.0)
        if now < slot:
            return slot
        self._next_slot[receiver] = now + gap
        return None

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
        p = self.policy(d.receiver)
        inc = d.incident
        alias = inc.body.get("group_alias")
        if unplaced(inc) and isinstance(alias, str):
            # a storm's rate-limited kill: the same process on the same host as a group
            # sent moments ago, so it joins that group's follow-up (which says the cgroup
            # of these kills is unknown) rather than starting a second one
            found = self.store.alias_group(d.receiver, alias, now - p.group_interval)
            if found is not None and found[0] != inc.key:
                self.store.fold(d.id, d.receiver, found[0], found[1] + p.group_interval)
                self.metrics.deliveries.labels(d.receiver, "folded").inc()
                return
        action, reason = decide(
            inc,
            self.store.group(d.receiver, inc.key),
            now,
            group_interval=p.group_interval,
            repeat_interval=p.repeat_interval,
        )
        if action == "fold":
            group = self.store.group(d.receiver, inc.key)
            last = group.last_sent if group else now
            self.store.fold(d.id, d.receiver, inc.key, last + p.group_interval)
            self.metrics.deliveries.labels(d.receiver, "folded").inc()
            return
        if action == "drop":
            self.store.give_up(d.id, "deduped", reason)
            self.metrics.deliveries.labels(d.receiver, "deduped").inc()
            return
        slot = self._paced(d.receiver)
        if slot is not None:
            self.store.defer(d.id, slot)
            return
        if await self._send(
            notifier,
            inc,
            d.receiver,
            attempts=d.attempts,
            retry=lambda at, err: self.store.retry(d.id, at, err),
            fail=lambda err: self.store.give_up(d.id, "failed", err),
        ):
            self.store.sent(d.id)
            self.store.group_sent(
                d.receiver,
                inc.key,
                self.clock(),
                inc.status,
                inc.severity,
                alias=alias if isinstance(alias, str) else None,
            )

    async def _followup(self, receiver: str, key: str) -> None:
        folded = self.store.folded(receiver, key)
        notifier = self.notifiers.get(receiver)
        if folded is not None and notifier is None:
            for i in folded.ids:
                self.store.give_up(i, "failed", "receiver no longer configured")
        if folded is None or notifier is None:
            self.store.postpone_followup(receiver, key, None)
            return
        slot = self._paced(receiver)
        if slot is not None:
            self.store.postpone_followup(receiver, key, slot)
            return
        p = self.policy(receiver)
        inc = followup(
            folded.last,
            folded.pids,
            folded.incident_ids,
            receiver,
            p.group_interval,
            key=key,
            unplaced_count=folded.unplaced,
        )
        attempts = folded.attempts
        ids = folded.ids

        def retry(at: float, err: str) -> None:
            self.store.postpone_followup(receiver, key, at)
            for i in ids:
                self.store.retry(i, float("inf"), err)  # attempts counted; state stays folded

        def fail(err: str) -> None:
            for i in ids:
                self.store.give_up(i, "failed", err)
            self.store.group_sent(receiver, key, self.clock(), inc.status, inc.severity)

        if await self._send(notifier, inc, receiver, attempts=attempts, retry=retry, fail=fail):
            self.store.followed(ids)
            self.store.group_sent(receiver, key, self.clock(), inc.status, inc.severity)

    async def _send(
        self,
        notifier: Notifier,
        inc: Incident,
        receiver: str,
        *,
        attempts: int,
        retry: Callable[[float, str], None],
        fail: Callable[[str], None],
    ) -> bool:
        """One attempt; on failure, schedule the retry or give up. True when sent."""
        try:
            await notifier.send(inc, f"{inc.id}/{receiver}")
        except NotifyError as e:
            self.metrics.deliveries.labels(receiver, e.reason).inc()
            if not e.retryable:
                fail(str(e))
                log.error("delivery of %s to %s failed for good: %s", inc.id, receiver, e)
                return False
            delay = max(backoff(attempts, base=self.base_delay), e.retry_after or 0.0)
            retry(self.clock() + delay, str(e))
            log.warning(
                "delivery of %s to %s failed (%s); retry in %.1f s", inc.id, receiver, e, delay
            )
            return False
        self.metrics.deliveries.labels(receiver, "ok").inc()
        self.busy = True
        return True
