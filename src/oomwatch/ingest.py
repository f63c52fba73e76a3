"""Ingest: kernel lines and memory samples become stored, routed incidents.

parse → reconcile → build → route → store. Routing (and silences) happen before
the store's transaction; the transaction only writes the incidents, their outbox
rows and the source's cursor, so a crash either loses nothing or has it all.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from oomwatch.delivery import silences
from oomwatch.delivery.routing import route
from oomwatch.errors import StoreError
from oomwatch.incidents.backlog import Backlog
from oomwatch.incidents.builder import IncidentBuilder, drill_pages
from oomwatch.kernel.report import ParseStats
from oomwatch.kernel.scan import LogScanner
from oomwatch.metrics import Metrics
from oomwatch.model import Incident, OomKill, Snapshot
from oomwatch.receivers import RouteConfig
from oomwatch.render.escape import terminal
from oomwatch.sampling.conditions import Conditions
from oomwatch.sampling.reconcile import CgroupReconciler, Reconciler
from oomwatch.sources import Batch
from oomwatch.store import Store

log = logging.getLogger("oomwatch")
# incidents kept in memory while the state database cannot be written (a full disk):
# far more than a storm's worth, far less than the agent's memory
MAX_UNSTORED = 5000
CURSOR_EVERY_S = 1.0  # how often a cursor alone (no incident with it) is stored
# sources any local user can write a kernel-looking line into (`logger`); kmsg and
# journald's kernel transport are the kernel's own
FORGEABLE = frozenset({"file"})


class Ingest:
    """The agent's path from what was read to what is stored and queued."""

    def __init__(
        self,
        store: Store,
        builder: IncidentBuilder,
        conditions: Conditions,
        metrics: Metrics,
        *,
        boot_id: str,
        routes: Callable[[], RouteConfig],
        silenced: Callable[[], list[silences.Silence]],
        on_new: Callable[[], None],
        pagers: Callable[[], set[str]] = set,
        degraded: Callable[[str | None], None] = lambda _why: None,
        oom_counter: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.store = store
        self.builder = builder
        self.conditions = conditions
        self.metrics = metrics
        self.boot_id = boot_id
        self.routes = routes
        self.silenced = silenced
        self.on_new = on_new
        self.pagers = pagers
        self.degraded = degraded
        self.oom_counter = oom_counter
        # (incidents, their receivers, where) in order, waiting for the database
        self.unstored: deque[tuple[list[Incident], dict[str, list[str]], dict[str, Any]]] = deque()
        self._unstored_logged_at = -60.0
        self._failing = False
        self.reconciler: Reconciler | None = None
        self.cgroups = CgroupReconciler()
        self.burst = False  # incidents since the last memory trim
        self._unread_seen: dict[str, int] = {}
        self.backlog: Backlog | None = None  # set on a first start in summary mode
        self._unread_logged_at = -60.0
        self._unsaved_cursor: tuple[str, str] | None = None  # read past, not yet stored
        self._cursor_saved_at = -60.0
        self.read_at = -60.0  # when the last batch with records came (time.monotonic())

    def batch(self, batch: Batch, source: str, scanner: LogScanner) -> None:
        """One batch of a follower: its kills and gaps, stored with the cursor after them."""
        incidents: list[Incident] = []
        stats = scanner.stats
        before = stats.malformed + stats.unread
        if batch.lines:
            self.read_at = time.monotonic()
        kills = scanner.feed_live(batch.lines)
        if stats.malformed + stats.unread != before:
            self.metrics.malformed.inc(stats.malformed + stats.unread - before)
            self._say_unread(source, stats)
        if batch.lost:
            self.metrics.log_gaps.inc()
            self.metrics.records_lost.inc(batch.lost)
            log.warning("%s overrun: %d records lost", source, batch.lost)
            incidents.append(self.builder.gap(source, batch.lost, batch.cursor))
        b = self.backlog
        counter: int | None = None
        for k in kills:
            self.metrics.kills.labels(k.killer, k.constraint or "none").inc()
            confirmed = None
            if k.killer == "kernel":
                if source in FORGEABLE and self.reconciler is not None:
                    counter = self.oom_counter() if counter is None else counter
                    confirmed = self.reconciler.confirms(k, counter)
                    if confirmed is False:
                        self._unconfirmed(k, source)
                if confirmed is not False:  # a forged kill must not hide a real unseen one
                    if self.reconciler is not None:
                        self.reconciler.saw(k)
                    self.cgroups.saw(k)
            if b is not None and b.older(k):
                b.add(k)
                continue
            if b is not None and b.count:
                incidents.insert(0, self._summary(b))  # the log has reached now
            b = None
            incidents.append(self.builder.kill(k, confirmed=confirmed))
            if confirmed is not False:  # forged lines must not make series
                self._count_workload(incidents[-1])
        safe = not scanner.parser.needs_context
        cursor = batch.cursor if safe else None
        if self.backlog is not None and self.backlog.count:
            # held until the summary is stored: a crash before it gathers them again
            self.backlog.cursor = (source, cursor) if cursor else self.backlog.cursor
            self.record(incidents)
            return
        if not incidents and cursor is not None:
            now = time.monotonic()
            if now - self._cursor_saved_at < CURSOR_EVERY_S:
                # a record without a kill is harmless to read twice after a crash; a
                # commit per small batch would cost a flood more than reading it
                self._unsaved_cursor = (source, cursor)
                return
            self._cursor_saved_at = now
        self._unsaved_cursor = None
        self.record(incidents, source=source, cursor=cursor)

    def save_cursor(self) -> None:
        """Store the cursor that `batch` held back (at a sample, on stop)."""
        if self._unsaved_cursor is not None:
            source, cursor = self._unsaved_cursor
            self._unsaved_cursor = None
            self._cursor_saved_at = time.monotonic()
            self.record([], source=source, cursor=cursor)

    def _count_workload(self, incident: Incident) -> None:
        kill = incident.kill
        if kill is not None:
            k = kill.kill
            self.metrics.workloads.count(kill.pod, k.task_memcg or k.oom_memcg)

    def _unconfirmed(self, k: OomKill, source: str) -> None:
        self.metrics.unconfirmed.inc()
        log.warning(
            "%s: a kill of %s (pid %s) that the kernel's oom_kill counter did not count: "
            "reported as unconfirmed (a line anyone may write, or not of this boot)",
            source,
            terminal(str(k.victim.comm)),
            k.victim.pid,
        )

    def _summary(self, b: Backlog) -> Incident:
        """The one incident for the kills that were in the log before the start."""
        self.backlog = None
        log.info("%d OOM kills were in the log before the start: one summary is sent", b.count)
        return self.builder.backlog(b.kills, b.count, b.booted)

    def flush_backlog(self) -> None:
        """Send the summary once no older kill has come for a while."""
        b = self.backlog
        if b is None or not b.due():
            return
        summary = self._summary(b)
        if b.cursor is not None:
            self.record([summary], source=b.cursor[0], cursor=b.cursor[1])
        else:
            self.record([summary])

    def _say_unread(self, source: str, stats: ParseStats) -> None:
        """Log the first line of each minute that told of a kill but gave no record."""
        seen = self._unread_seen.get(source, 0)
        if stats.unread == seen:
            return
        new = stats.unread - seen
        self._unread_seen[source] = stats.unread
        now = time.monotonic()
        if now - self._unread_logged_at < 60 or not stats.unread_examples:
            return
        self._unread_logged_at = now
        s = stats.unread_examples[-1]
        log.warning(
            "%s: %d line(s) told of an OOM kill that gave no record (%s): %s",
            source,
            new,
            s.why,
            terminal(s.text),
        )

    def sample(self, snap: Snapshot) -> None:
        """One memory sample: conditions, and kills the counters saw but the log did not."""
        self.flush_backlog()
        self.builder.snapshot = snap
        incidents = [self.builder.condition(c) for c in self.conditions.update(snap)]
        for u in self.cgroups.check(snap.cgroups):
            self.metrics.unseen_kills.inc(u.missing)
            log.warning("%d OOM kills in %s were not in the log", u.missing, u.path)
            incidents.append(
                self.builder.unseen(u.missing, "memory.events oom_kill", u.path, u.counter)
            )
            if self.reconciler is not None:
                self.reconciler.absorb(u.missing)
        if self.reconciler is not None:
            missing = self.reconciler.check(snap.vmstat_oom_kill)
            if missing:
                self.metrics.unseen_kills.inc(missing)
                log.warning("%d OOM kills counted by the kernel were not in the log", missing)
                incidents.append(
                    self.builder.unseen(
                        missing, "/proc/vmstat oom_kill", None, snap.vmstat_oom_kill or 0
                    )
                )
        if incidents:
            self.record(incidents)

    def record(self, incidents: list[Incident], **where: Any) -> None:
        """Route, then store incidents (and a cursor) in one transaction; wake delivery.

        When the database cannot be written (a full disk), they wait in memory, in
        order, and go in with the next write that succeeds: nothing is lost unless
        the agent stops before space returns (then the log is read again from the
        last cursor stored).
        """
        receivers = {inc.id: self.receivers(inc) for inc in incidents}
        # while failing, a cursor alone is not kept: the next batch's comes after it
        if incidents or (where and not self.unstored):
            self.unstored.append((incidents, receivers, where))
        self.store_unstored()

    def store_unstored(self) -> None:
        """Write what waits in memory, oldest first; stop at the first failure."""
        stored = 0
        while self.unstored:
            incidents, receivers, where = self.unstored[0]
            extra = {
                "boot_id": self.boot_id,
                "oom_kill_accounted": self.reconciler.state() if self.reconciler else None,
            }
            try:
                new = self.store.record(incidents, receivers, extra=extra, **where)
            except (StoreError, sqlite3.Error, OSError) as e:
                self._cannot_store(e)
                return
            self.unstored.popleft()
            stored += len(incidents)
            self.burst = self.burst or bool(new)
            for inc in new:
                self.metrics.incidents.labels(inc.kind).inc()
            if new:
                self.on_new()
        if self._failing:
            self._failing = False
            self._unstored_logged_at = -60.0
            log.warning("state database writable again: %d incident(s) stored", stored)
            self.metrics.unstored.set(0)
            self.degraded(None)

    def _cannot_store(self, e: BaseException) -> None:
        """Keep the incidents in memory (bounded), say so once a minute, report degraded."""
        waiting = sum(len(i) for i, _, _ in self.unstored)
        while waiting > MAX_UNSTORED and len(self.unstored) > 1:
            dropped, _, _ = self.unstored.popleft()  # the oldest: the log still holds them
            waiting -= len(dropped)
            log.error(
                "%d incident(s) dropped from memory: the state database still fails",
                len(dropped),
            )
        self._failing = True
        self.metrics.unstored.set(waiting)
        why = f"state database cannot be written: {e}"
        self.degraded(why)
        now = time.monotonic()
        if now - self._unstored_logged_at >= 60:
            self._unstored_logged_at = now
            log.error("%s; %d incident(s) kept in memory and retried", why, waiting)

    def warm(self, records: list[bytes]) -> None:
        """A kill read, built, routed and stored once, nothing kept: ready for the first.

        The first kill after a start otherwise runs code the interpreter has not yet
        specialised and statements SQLite has not yet prepared (parse, build and store
        took 1.9 ms for it, 1.1 ms for the next, in one process).
        """
        try:
            kills = LogScanner().feed_live(records)
            incidents = [self.builder.kill(k) for k in kills]
            chosen = route(self.routes(), incidents[0]) if incidents else []
            self.store.rehearse(incidents, chosen)
        except Exception as e:  # noqa: BLE001 - a rehearsal must never stop the agent
            log.debug("warm-up failed: %s: %s", type(e).__name__, e)

    def receivers(self, inc: Incident) -> list[str]:
        """Who gets an incident: its routes, unless a silence covers it."""
        s = silences.silencing(self.silenced(), inc.labels(), time.time())
        if s is not None:
            self.metrics.silenced.labels(inc.kind).inc()
            log.info("incident %s silenced by %s", inc.id, s.id)
            return []
        chosen = route(self.routes(), inc)
        if inc.drill and not drill_pages(inc):
            # a drill pages no one unless `oomwatch drill --page` asked for it
            skipped = self.pagers()
            chosen = [r for r in chosen if r not in skipped]
        return chosen
