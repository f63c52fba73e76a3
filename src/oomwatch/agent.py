"""`oomwatch run`: follow the kernel log, sample memory, store incidents, deliver them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from oomwatch import silences
from oomwatch.conditions import Conditions
from oomwatch.config import RouteConfig, effective, load_file
from oomwatch.delivery.dispatcher import Dispatcher, Policy
from oomwatch.enrich.kubernetes import PodIndex, PodWatcher
from oomwatch.errors import UsageError
from oomwatch.incidents import HostInfo, Incident, IncidentBuilder
from oomwatch.kernel.scan import LogScanner
from oomwatch.metrics import Metrics
from oomwatch.model import OomKill
from oomwatch.notify import Notifier
from oomwatch.notify.build import make_notifier
from oomwatch.notify.slack import ThreadStore
from oomwatch.reconcile import CgroupReconciler, Reconciler
from oomwatch.routing import labels, route
from oomwatch.sampler import Sampler, Snapshot
from oomwatch.server import HealthState, make_app, serve
from oomwatch.settings import Settings
from oomwatch.sources import Batch, Follower
from oomwatch.sources.kmsg import read_boot_id
from oomwatch.store import Store

log = logging.getLogger("oomwatch")
RESTART_DELAY_S = 2.0
SLACK_MIN_GAP_S = 1.0
FILES_POLL_S = 1.0
CLOSE_OLD_NOTIFIERS_S = 30.0  # Slack allows about one message a second per channel
KEEP_INCIDENTS_S = 30 * 86400.0  # the state file stays small on a node that runs for years
PRUNE_EVERY_S = 3600.0


def build_notifiers(
    settings: Settings, store: ThreadStore | None = None
) -> tuple[dict[str, Notifier], RouteConfig, dict[str, Policy]]:
    """Notifiers of the file's and the environment's receivers, the routes, and the policies."""
    file = load_file(settings.config) if settings.config else None
    eff = effective(settings, file)
    notifiers = {
        r.name: make_notifier(
            r, store, repeat_interval=settings.repeat_interval_s, node=settings.hostname
        )
        for r in eff.receivers
    }
    policies = {
        r.name: Policy(
            group_interval=r.group_interval or settings.group_interval_s,
            repeat_interval=r.repeat_interval or settings.repeat_interval_s,
            min_gap_s=SLACK_MIN_GAP_S if r.kind == "slack" else 0.0,
        )
        for r in eff.receivers
    }
    return notifiers, eff.route or RouteConfig(receivers=list(notifiers)), policies


def trim_memory() -> None:
    """Hand freed heap back to the system after a burst (glibc keeps it otherwise)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def protect_self(proc_root: Path, adj: int) -> None:
    """Lower our own oom_score_adj so the agent is among the last the kernel kills."""
    try:
        (proc_root / "self" / "oom_score_adj").write_text(str(adj))
    except OSError as e:
        log.warning("could not set oom_score_adj to %d: %s", adj, e.strerror)


class Agent:
    """The wiring of the pipeline; `run()` until `stop` is set."""

    def __init__(self, settings: Settings, notifiers: dict[str, Notifier] | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db_path = settings.state_path / "oomwatch.db"
        self.store = Store(self.db_path)
        self.boot_id = read_boot_id(settings.proc_root)
        self.sampler = Sampler(settings.proc_root, settings.sys_root)
        self.host = HostInfo.current(self.boot_id, settings.hostname)
        self.pods, self.pod_watcher = _kubernetes(settings, self.host.hostname)
        self.builder = IncidentBuilder(self.host, self.sampler.cache, self.pods)
        self.conditions = Conditions(settings.thresholds, renotify_s=settings.repeat_interval_s)
        self._fixed_notifiers = notifiers is not None
        self._closing: set[asyncio.Task[None]] = set()
        if notifiers is None:
            self.notifiers, self.route, policies = build_notifiers(settings, self.store)
        else:
            self.notifiers, self.route, policies = (
                notifiers,
                RouteConfig(receivers=list(notifiers)),
                {},
            )
        self.dispatcher = Dispatcher(
            self.store,
            self.notifiers,
            self.metrics,
            max_age_s=settings.delivery_max_age_s,
            policies=policies,
        )
        self.health = HealthState(stale_after_s=max(3 * settings.sample_interval, 30.0))
        self.follower: Follower | None = None
        self.reconciler: Reconciler | None = None
        self.silences = silences.load(settings.silences_file)
        self._burst = False  # incidents since the last memory trim
        self._samples = 0
        self.cgroup_reconciler = CgroupReconciler()

    # -- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part until `stop`, then flush and close."""
        server = serve(
            self.settings.listen, make_app(self.metrics.registry, self.health, self.db_path)
        )
        tasks = [
            asyncio.create_task(c)
            for c in (
                self._follow_forever(),
                self._sample_forever(),
                self.dispatcher.run(),
                self._watch_files(),
                *([self.pod_watcher.run()] if self.pod_watcher else []),
            )
        ]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.shutdown()
            server.server_close()
            for n in self.notifiers.values():
                await n.aclose()
            if self.follower is not None:
                self.follower.close()
            self.store.close()

    async def _follow_forever(self) -> None:
        """Follow the source; restart it after a failure, with a delay."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("log source failed: %s; restarting in %.0f s", e, RESTART_DELAY_S)
            self.health.ready = False
            if self.follower is not None:
                self.metrics.source_up.labels(self.follower.name).set(0)
                self.follower.close()
                self.follower = None
            await asyncio.sleep(RESTART_DELAY_S)

    async def _follow(self) -> None:
        follower = self.follower = self._open_source()
        _, extra = self.store.cursor(follower.name)
        same_boot = extra.get("boot_id") == self.boot_id
        if self.reconciler is None:
            saved = extra.get("oom_kill_accounted") if same_boot else None
            if isinstance(saved, int):
                self.reconciler = Reconciler(saved, None)
            else:  # fresh: count from now; replayed older kills are history
                self.reconciler = Reconciler(
                    self.sampler.vmstat_oom_kill(), _uptime(self.settings.proc_root)
                )
        scanner = LogScanner(reference=None)
        # save where reading starts, so that a crash before the first record still
        # resumes from here, not from "now" on the next start
        self._store([], source=follower.name, cursor=follower.cursor)
        self.metrics.source_up.labels(follower.name).set(1)
        self.health.ready = True
        log.info("reading the kernel log from %s", follower.name)
        async for batch in follower.batches():
            self._handle(batch, follower.name, scanner)

    def _handle(self, batch: Batch, source: str, scanner: LogScanner) -> None:
        incidents: list[Incident] = []
        before = scanner.stats.malformed
        kills: list[OomKill] = []
        for raw in batch.lines:
            kills.extend(scanner.feed(raw))
        self.metrics.malformed.inc(scanner.stats.malformed - before)
        if batch.lost:
            self.metrics.log_gaps.inc()
            self.metrics.records_lost.inc(batch.lost)
            log.warning("%s overrun: %d records lost", source, batch.lost)
            incidents.append(self.builder.gap(source, batch.lost, batch.cursor))
        for k in kills:
            self.metrics.kills.labels(k.killer, k.constraint or "none").inc()
            if k.killer == "kernel" and self.reconciler is not None:
                self.reconciler.saw(k)
            if k.killer == "kernel":
                self.cgroup_reconciler.saw(k)
            incidents.append(self.builder.kill(k))
        safe = not scanner.parser.needs_context
        self._store(incidents, source=source, cursor=batch.cursor if safe else None)

    def _store(self, incidents: list[Incident], **where: Any) -> None:
        extra = {
            "boot_id": self.boot_id,
            "oom_kill_accounted": self.reconciler.state() if self.reconciler else None,
        }
        new = self.store.record(incidents, self._receivers, extra=extra, **where)
        self._burst = self._burst or bool(new)
        for inc in new:
            self.metrics.incidents.labels(inc.kind).inc()
        if new:
            self.dispatcher.wake()

    def _receivers(self, inc: Incident) -> list[str]:
        """Who gets an incident: its routes, unless a silence covers it."""
        s = silences.silencing(self.silences, labels(inc), time.time())
        if s is not None:
            self.metrics.silenced.labels(inc.kind).inc()
            log.info("incident %s silenced by %s", inc.id, s.id)
            return []
        return route(self.route, inc)

    def reload_silences(self) -> None:
        """Read the silences again; a bad file is logged and the old silences stay."""
        try:
            self.silences = silences.load(self.settings.silences_file)
        except UsageError as e:
            log.error("%s; keeping the %d silences in force", e, len(self.silences))
            return
        log.info("silences reloaded: %d active", sum(s.active(time.time()) for s in self.silences))

    def reload(self) -> None:
        """SIGHUP: read the silences and the config file again."""
        self.reload_silences()
        self.reload_config()

    def reload_config(self) -> None:
        """Build receivers and routes from the config file again; a bad file changes nothing.

        Deliveries already queued for a receiver that is gone fail as "no longer
        configured"; the old notifiers are closed a little later, once in-flight sends
        are done.
        """
        if self.settings.config is None or self._fixed_notifiers:
            return
        try:
            notifiers, route_tree, policies = build_notifiers(self.settings, self.store)
        except UsageError as e:
            log.error("%s; the configuration in force stays", e)
            return
        old = self.notifiers
        self.notifiers, self.route = notifiers, route_tree
        self.dispatcher.notifiers, self.dispatcher.policies = dict(notifiers), dict(policies)
        log.info("configuration reloaded: receivers %s", ", ".join(notifiers) or "none")
        asyncio.get_running_loop().call_later(CLOSE_OLD_NOTIFIERS_S, self._close_later, old)

    def _close_later(self, old: dict[str, Notifier]) -> None:
        for n in old.values():
            task = asyncio.get_running_loop().create_task(n.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _watch_files(self) -> None:
        """Reload the silences and the config file when they change.

        A stat a second rather than an inotify watcher: the agent runs on every node, and
        this costs neither a library in memory nor wakeups of its own. The stat follows
        symlinks, so a Kubernetes ConfigMap update (a swapped `..data` link) is seen.
        """
        silences_path = self.settings.silences_file
        config_path = self.settings.config
        seen = (_stamp(silences_path), _stamp(config_path) if config_path else None)
        while True:
            await asyncio.sleep(FILES_POLL_S)
            now = (_stamp(silences_path), _stamp(config_path) if config_path else None)
            if now[0] != seen[0]:
                self.reload_silences()
            if now[1] != seen[1]:
                self.reload_config()
            seen = now

    async def _sample_forever(self) -> None:
        interval = self.settings.sample_interval
        pruned = 0.0
        while True:
            started = time.monotonic()
            if started - pruned > PRUNE_EVERY_S:
                pruned = started
                self.store.prune(time.time() - KEEP_INCIDENTS_S)
            try:
                snap = await asyncio.to_thread(self.sampler.sample)
            except Exception as e:
                log.error("memory sample failed: %s", e)
            else:
                self.metrics.sample_duration.observe(time.monotonic() - started)
                self._after_sample(snap)
            self.health.beat()
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))

    def _after_sample(self, snap: Snapshot) -> None:
        self._samples += 1
        if self._burst or self.dispatcher.busy or self._samples <= 2:
            # after a burst, and after start-up (whose garbage is the largest)
            self._burst = self.dispatcher.busy = False
            trim_memory()
        self.builder.snapshot = snap
        incidents = [self.builder.condition(c) for c in self.conditions.update(snap)]
        for u in self.cgroup_reconciler.check(snap.cgroups):
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
            self._store(incidents)

    def _open_source(self) -> Follower:
        s = self.settings
        order = ["kmsg", "journald", "file"] if s.source == "auto" else [s.source]
        errors = []
        for name in order:
            cursor, _ = self.store.cursor(name)
            try:
                return _open(name, s, self.boot_id, cursor, s.first_start == "new")
            except (OSError, UsageError) as e:
                errors.append(f"{name}: {e}")
        raise UsageError("no kernel log source can be read: " + "; ".join(errors))


def _open(name: str, s: Settings, boot_id: str, cursor: str | None, from_end: bool) -> Follower:
    if name == "kmsg":
        from oomwatch.sources.kmsg import KmsgFollower

        return KmsgFollower(s.kmsg_path, boot_id, cursor, from_end=from_end)
    if name == "journald":
        from oomwatch.sources.journald import JournaldFollower

        if shutil.which("journalctl") is None:
            raise UsageError("journalctl is not installed")
        return JournaldFollower(cursor, from_end=from_end)
    from oomwatch.sources.logfile import LogFileFollower

    if not s.log_file.parent.is_dir():
        raise UsageError(f"{s.log_file.parent} does not exist")
    return LogFileFollower(s.log_file, cursor, from_end=from_end)


def _kubernetes(settings: Settings, node: str) -> tuple[PodIndex | None, PodWatcher | None]:
    """The pod cache and its watch, when this node is part of a Kubernetes cluster."""
    wanted = settings.kubernetes == "on" or (
        settings.kubernetes == "auto"
        and (settings.kubernetes_api_url or os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    if not wanted:
        return None, None
    index = PodIndex()
    return index, PodWatcher(node, index, api_url=settings.kubernetes_api_url)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _uptime(proc_root: Path) -> float | None:
    try:
        return float((proc_root / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def one_malloc_arena() -> None:
    """Make every thread allocate from glibc's one main arena.

    Each thread would otherwise get an arena of its own, whose freed memory stays in
    the agent's RSS; the agent's threads (sampler, HTTP) allocate little and rarely.
    """
    import ctypes

    m_arena_max = -8
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, 1)


def run_agent(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; the exit code."""
    one_malloc_arena()
    protect_self(settings.proc_root, settings.oom_score_adj)
    agent = Agent(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, agent.reload)
        log.info(
            "oomwatch agent on %s (pid %d), state in %s, receivers: %s, http on %s",
            agent.host.hostname,
            os.getpid(),
            agent.db_path,
            ", ".join(agent.notifiers) or "none",
            settings.listen,
        )
        await agent.run(stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    log.info("oomwatch agent stopped")
    return 0
