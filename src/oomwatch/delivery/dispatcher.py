"""Delivery: one lane per receiver, each its own worker, from the outbox to the notifier.

A lane runs the stages of `stages.py` for its receiver alone: a slow, failing or
crashing receiver never delays or stops another. A 429 pauses the whole lane
until its Retry-After (stored, so a restart keeps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Mapping

from oomwatch.delivery.grouping import decide, followup
from oomwatch.delivery.stages import BugLog, Outcome, Pace, Policy, attempt, expired, retry_at
from oomwatch.errors import FailureReason, NotifyError, StoreError
from oomwatch.metrics import Metrics
from oomwatch.model import Incident
from oomwatch.notify import Notifier, Recovers
from oomwatch.redact import redact
from oomwatch.render.escape import terminal, truncate
from oomwatch.store import Delivery, Folded, Store
from oomwatch.store.outbox import earliest

log = logging.getLogger("oomwatch.delivery")

__all__ = ["Dispatcher", "Lane", "Policy"]
LANE_FAULT_WAIT_S = 1.0
LOGGED_TITLE_CHARS = 160
DUE_PAGE = 10  # deliveries read from the outbox at a time: each holds its whole incident
# failures after which the receiver may still have taken the message
UNKNOWN_OUTCOME = frozenset({FailureReason.TIMEOUT, FailureReason.CONNECTION})


class Lane:
    """One receiver's deliveries and follow-ups, in order, at the receiver's pace."""

    def __init__(self, d: Dispatcher, receiver: str) -> None:
        self.d = d
        self.receiver = receiver
        self.wake = asyncio.Event()
        self.pace = Pace(d.policy(receiver).min_gap_s, d.store.pause(receiver))
        self.failing = False  # a retryable failure since the last success
        # no follow-up of this lane is due before this time (-inf: ask the store), as
        # read after its last pass: only the lane sets its follow-ups, in its passes
        self.followups_from = -math.inf

    @property
    def notifier(self) -> Notifier | None:
        """The receiver's notifier now (a reload may replace it)."""
        return self.d.notifiers.get(self.receiver)

    async def run(self) -> None:
        """Deliver forever; a fault of the store waits a moment and goes on."""
        self.followups_from = -math.inf
        while True:
            try:
                await self.deliver_due()
                due_at, follow_at = self.d.store.next_times(self.receiver)
                self.followups_from = math.inf if follow_at is None else follow_at
                nxt = earliest(due_at, follow_at)
            except (StoreError, sqlite3.Error) as e:
                log.error("delivery to %s: state database failed: %s", self.receiver, e)
                self.followups_from = -math.inf
                nxt = self.d.clock() + LANE_FAULT_WAIT_S
            timeout = None if nxt is None else max(nxt - self.d.clock(), 0.0)
            self.wake.clear()
            if timeout is not None and timeout <= 0:
                await asyncio.sleep(0.05)  # due again at once: do not spin
                continue
            # a timeout scope, not wait_for: no task of its own, so a wake-up reaches the
            # lane in one turn of the loop, not two
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.wake.wait()

    async def deliver_due(self) -> None:
        """One pass over what is due now: follow-ups first, then new deliveries."""
        store, now = self.d.store, self.d.clock()
        if now >= self.followups_from:
            for key in store.due_followups(now, self.receiver):
                if not await self._followup(key):
                    break
        # a page at a time (each delivery holds its whole incident), oldest first; one
        # still due after its turn (a retry come due meanwhile) waits for the next pass
        last = -1
        while page := store.due(self.d.clock(), self.receiver, DUE_PAGE):
            if page[0].id <= last or not await self._deliver_page(page) or len(page) < DUE_PAGE:
                break
            last = page[-1].id
        self.d.metrics.queue_depth.labels(self.receiver).set(store.pending(self.receiver))

    async def _deliver_page(self, page: list[Delivery]) -> bool:
        """Deliver each in turn; False as soon as the lane must wait."""
        for delivery in page:
            if not await self._deliver(delivery):
                return False
        return True

    async def _deliver(self, dl: Delivery) -> bool:
        """Run one delivery through the stages; False when the lane must wait (paced, paused)."""
        store, m, now = self.d.store, self.d.metrics, self.d.clock()
        if expired(dl.created, now, self.d.max_age_s):
            store.give_up(dl.id, "dropped", "older than the maximum age")
            m.dropped.labels(self.receiver).inc()
            log.warning("dropped delivery of %s to %s: too old", dl.incident.id, self.receiver)
            return True
        notifier = self.notifier
        if notifier is None:
            store.give_up(dl.id, "failed", "receiver no longer configured")
            return True
        inc = dl.incident
        if dl.inflight_at is not None:
            # the agent before a crash chose to send this one: look, then send it as it
            # was (never fold it now, or its kill would be told again under a new key)
            if isinstance(notifier, Recovers) and await self._arrived(
                notifier, inc, dl.inflight_at
            ):
                self._sent(dl)
                return True
        elif self._folded(dl, now):
            return True
        wait = self.pace.wait_until(now)
        if wait is not None:
            store.defer(dl.id, wait)
            return False
        store.inflight([dl.id], now)
        out = await self._attempt(notifier, inc)
        if out.sent:
            self.d.busy = True
            self.d.metrics.deliveries.labels(self.receiver, "sent").inc()
            self._sent(dl)
        else:
            self._failed(
                out,
                dl.attempts,
                lambda at, err, unknown: store.retry(dl.id, at, err, unknown=unknown),
                lambda err: store.give_up(dl.id, "failed", err),
                inc.id,
            )
        return True

    async def _attempt(self, notifier: Notifier, inc: Incident) -> Outcome:
        """One attempt, and a line saying it went (failures say so where they are handled)."""
        started = time.monotonic()
        out = await attempt(notifier, inc, self.receiver, self.d.bug_log)
        if out.sent and self.failing:
            self._recovered()
        if out.sent and self.d.policy(self.receiver).log_sent:
            log.info(
                "sent to %s in %.0f ms: %s",
                self.receiver,
                (time.monotonic() - started) * 1000,
                terminal(truncate(inc.title, LOGGED_TITLE_CHARS)),
            )
        return out

    def _recovered(self) -> None:
        """A success after failures is the probe: what waits out a backoff goes now."""
        self.failing = False
        waiting = self.d.store.retry_now(self.receiver, self.d.clock())
        if waiting:
            log.info("%s answers again: %d delivery(ies) retried now", self.receiver, waiting)
            self.wake.set()

    def _sent(self, dl: Delivery) -> None:
        inc = dl.incident
        self.d.store.sent(dl.id)
        alias = inc.kill.group_alias if inc.kill else None
        self.d.store.group_sent(
            self.receiver, inc.key, self.d.clock(), inc.status, inc.severity, alias=alias
        )

    async def _arrived(self, notifier: Recovers, inc: Incident, since: float) -> bool:
        """Whether an attempt a crash cut off reached the receiver (looked up, not sent)."""
        try:
            found = await notifier.recover(inc, f"{inc.id}/{self.receiver}", since)
        except NotifyError as e:
            log.warning(
                "delivery of %s to %s: cannot tell whether the attempt before the restart "
                "arrived (%s); sending it",
                inc.id,
                self.receiver,
                e,
            )
            return False
        except Exception as e:  # noqa: BLE001 - a defect here must not stop the lane
            self.d.bug_log(self.receiver, e)
            return False
        if found:
            self.d.metrics.deliveries.labels(self.receiver, "recovered").inc()
            log.info(
                "delivery of %s to %s arrived before the restart; not sent again",
                inc.id,
                self.receiver,
            )
        return found

    def _folded(self, dl: Delivery, now: float) -> bool:
        """Fold a repeat into its group's follow-up, or drop a duplicate; whether it did."""
        store, m, p, inc = self.d.store, self.d.metrics, self.d.policy(self.receiver), dl.incident
        if inc.unplaced and inc.kill is not None:
            # a storm's rate-limited kill: the same process on the same host as a group
            # sent moments ago, so it joins that group's follow-up (which says the cgroup
            # of these kills is unknown) rather than starting a second one
            found = store.alias_group(self.receiver, inc.kill.group_alias, now - p.group_interval)
            if found is not None and found[0] != inc.key:
                store.fold(dl.id, self.receiver, found[0], found[1] + p.group_interval)
                m.deliveries.labels(self.receiver, "folded").inc()
                return True
        group = store.group(self.receiver, inc.key)
        action, reason = decide(
            inc, group, now, group_interval=p.group_interval, repeat_interval=p.repeat_interval
        )
        if action == "fold":
            last = group.last_sent if group else now
            store.fold(dl.id, self.receiver, inc.key, last + p.group_interval)
            m.deliveries.labels(self.receiver, "folded").inc()
            return True
        if action == "drop":
            store.give_up(dl.id, "deduped", reason)
            m.deliveries.labels(self.receiver, "deduped").inc()
            return True
        return False

    async def _followup(self, key: str) -> bool:
        """Send one follow-up of folded repeats; False when the lane must wait."""
        store, r = self.d.store, self.receiver
        folded = self._fresh(store.folded(r, key), key)
        notifier = self.notifier
        if folded is None or notifier is None:
            if folded is not None:
                for i in folded.ids:
                    store.give_up(i, "failed", "receiver no longer configured")
            store.postpone_followup(r, key, None)
            return True
        wait = self.pace.wait_until(self.d.clock())
        if wait is not None:
            store.postpone_followup(r, key, wait)
            return False
        p = self.d.policy(r)
        since = folded.inflight_at
        cut = since is not None
        if (
            since is not None
            and isinstance(notifier, Recovers)
            and await self._arrived(notifier, self._cut_followup(folded, key), since)
        ):
            self._followed(folded, folded.inflight, key, sent=True)
            return True
        inc = (
            self._cut_followup(folded, key)
            if cut
            else followup(
                folded.last,
                folded.pids,
                folded.incident_ids,
                r,
                p.group_interval,
                key=key,
                unplaced_count=folded.unplaced,
            )
        )
        ids = folded.inflight if cut else folded.ids

        def retry(at: float, err: str, unknown: bool) -> None:
            store.postpone_followup(r, key, at)
            for i in ids:
                # attempts counted; state stays folded
                store.retry(i, float("inf"), err, unknown=unknown)

        def fail(err: str) -> None:
            for i in ids:
                store.give_up(i, "failed", err)
            self._followed(folded, ids, key, sent=False)

        store.inflight(ids, self.d.clock())
        out = await self._attempt(notifier, inc)
        if out.sent:
            self.d.metrics.deliveries.labels(r, "sent").inc()
            self._followed(folded, ids, key, sent=True)
        else:
            self._failed(out, folded.attempts, retry, fail, inc.id)
        return True

    def _fresh(self, folded: Folded | None, key: str) -> Folded | None:
        """The folded repeats without those older than the maximum age (dropped, as deliveries)."""
        if folded is None:
            return None
        now, store = self.d.clock(), self.d.store
        stale = [
            i
            for i, c in zip(folded.ids, folded.created, strict=True)
            if expired(c, now, self.d.max_age_s)
        ]
        if not stale:
            return folded
        for i in stale:
            store.give_up(i, "dropped", "older than the maximum age")
        self.d.metrics.dropped.labels(self.receiver).inc(len(stale))
        log.warning(
            "dropped %d repeat(s) of %s waiting for a follow-up to %s: too old",
            len(stale),
            key,
            self.receiver,
        )
        return store.folded(self.receiver, key) if len(stale) < len(folded.ids) else None

    def _cut_followup(self, folded: Folded, key: str) -> Incident:
        """The follow-up whose attempt a crash cut off: its key, and the repeats it carried.

        It goes again as it was, so a receiver that drops a repeat by its key loses
        none of the repeats folded after it (they go in the next follow-up).
        """
        return followup(
            folded.last,
            folded.inflight_pids,
            folded.inflight_incident_ids,
            self.receiver,
            self.d.policy(self.receiver).group_interval,
            key=key,
        )

    def _followed(self, folded: Folded, ids: list[int], key: str, *, sent: bool) -> None:
        """These repeats went out (or failed for good); the others wait for the next one."""
        store, r, p = self.d.store, self.receiver, self.d.policy(self.receiver)
        now = self.d.clock()
        if sent:
            store.followed(ids)
        store.group_sent(r, key, now, folded.last.status, folded.last.severity)
        if len(folded.ids) > len(ids):
            store.postpone_followup(r, key, now + p.group_interval)

    def _failed(
        self,
        out: Outcome,
        attempts: int,
        retry: Callable[[float, str, bool], None],
        fail: Callable[[str], None],
        incident_id: str,
    ) -> None:
        """Record a failed attempt: retry later (pausing the lane on a rate limit), or give up."""
        e = out.error
        if e is None:
            return
        self.d.metrics.deliveries.labels(self.receiver, e.reason.value).inc()
        if not e.retryable:
            fail(redact(str(e)))
            log.error("delivery of %s to %s failed for good: %s", incident_id, self.receiver, e)
            return
        self.failing = True
        at = retry_at(e, attempts, self.d.clock(), self.d.base_delay)
        if (
            e.reason is FailureReason.RATE_LIMITED
            and e.retry_after is not None
            and self.pace.pause(at)
        ):
            self.d.store.set_pause(self.receiver, at)
            self.d.metrics.paused_until.labels(self.receiver).set(at)
        retry(at, redact(str(e)), e.reason in UNKNOWN_OUTCOME)  # stored: no secret in it
        log.warning(
            "delivery of %s to %s failed (%s); retry in %.1f s",
            incident_id,
            self.receiver,
            e,
            at - self.d.clock(),
        )


class Dispatcher:
    """The lanes of every receiver, and the one copy of their notifiers and policies."""

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
        self.bug_log = BugLog()
        self.lanes: dict[str, Lane] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.busy = False  # sent something since the agent last trimmed its memory

    def policy(self, receiver: str) -> Policy:
        """The receiver's policy (the defaults when it has none of its own)."""
        return self.policies.get(receiver) or Policy()

    def wake(self) -> None:
        """New deliveries are in the outbox."""
        for lane in self.lanes.values():
            lane.wake.set()

    def replace(self, notifiers: Mapping[str, Notifier], policies: Mapping[str, Policy]) -> None:
        """New receivers after a reload: lanes for new ones, none for removed ones."""
        self.notifiers, self.policies = dict(notifiers), dict(policies)
        if self._tasks:
            self._start_lanes()

    def _start_lanes(self) -> None:
        self.store.orphans(self.notifiers)
        for name in self.notifiers:
            if name not in self._tasks or self._tasks[name].done():
                lane = self.lanes[name] = Lane(self, name)
                self._tasks[name] = asyncio.get_running_loop().create_task(
                    self._supervised(lane), name=f"lane:{name}"
                )
        for name in [n for n in self._tasks if n not in self.notifiers]:
            self._tasks.pop(name).cancel()
            self.lanes.pop(name, None)

    async def _supervised(self, lane: Lane) -> None:
        while True:
            try:
                await lane.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery lane %s died; restarting", lane.receiver)
                self.metrics.task_restarts.labels(f"lane:{lane.receiver}").inc()
                await asyncio.sleep(LANE_FAULT_WAIT_S)

    async def run(self) -> None:
        """Run every lane until cancelled."""
        self._start_lanes()
        try:
            await asyncio.Event().wait()
        finally:
            for t in self._tasks.values():
                t.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()

    async def deliver_due(self) -> None:
        """One pass of every lane (for tests and one-shot use)."""
        for name in self.notifiers:
            lane = self.lanes.get(name) or self.lanes.setdefault(name, Lane(self, name))
            await lane.deliver_due()
