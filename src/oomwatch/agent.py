"""`oomwatch run`: follow the kernel log, sample memory, store incidents, deliver them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oomwatch import configchild, redact
from oomwatch.delivery import silences
from oomwatch.delivery.dispatcher import Dispatcher
from oomwatch.delivery.stages import Policy
from oomwatch.enrich.host import read_boot_id, read_uptime, this_node
from oomwatch.enrich.kubernetes import PodIndex, PodWatcher
from oomwatch.errors import OomwatchError, StoreError, UsageError
from oomwatch.incidents.backlog import Backlog
from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.ingest import Ingest
from oomwatch.kernel.scan import LogScanner
from oomwatch.metrics import Metrics
from oomwatch.model import Snapshot
from oomwatch.notify import Notifier
from oomwatch.notify.common import Context
from oomwatch.notify.registry import KINDS
from oomwatch.receivers import FileConfig, RouteConfig, make_notifier
from oomwatch.sampling.conditions import Conditions
from oomwatch.sampling.reconcile import Reconciler
from oomwatch.sampling.sampler import Sampler
from oomwatch.sdnotify import Notify, notify_forever
from oomwatch.server import HealthState, make_app, serve
from oomwatch.settings import Settings
from oomwatch.sources import SOURCES, Follower
from oomwatch.store import Store
from oomwatch.supervisor import Supervisor

log = logging.getLogger("oomwatch")
RESTART_DELAY_S = 2.0
FILES_POLL_S = 1.0
CLOSE_OLD_NOTIFIERS_S = 30.0  # Slack allows about one message a second per channel
KEEP_INCIDENTS_S = 30 * 86400.0  # the state file stays small on a node that runs for years
PRUNE_EVERY_S = 3600.0
SWITCH_INTERVAL_S = 0.0005
TRIM_QUIET_S = 0.5  # how long the log must have been quiet before memory is trimmed


def build_notifiers(
    settings: Settings, eff: FileConfig, store: Store | None = None
) -> tuple[dict[str, Notifier], RouteConfig, dict[str, Policy]]:
    """Notifiers of the receivers in force, the routes, and the policies."""
    redact.remember(redact.secrets_of(eff))
    ctx = Context(store, settings.repeat_interval_s, settings.hostname, settings.log_format)
    notifiers = {r.name: make_notifier(r, ctx) for r in eff.receivers}
    policies = {
        r.name: Policy(
            group_interval=r.group_interval
            or (0.0 if KINDS[r.kind].local else settings.group_interval_s),
            repeat_interval=r.repeat_interval or settings.repeat_interval_s,
            min_gap_s=KINDS[r.kind].min_gap_s,
            pages=KINDS[r.kind].pages,
            log_sent=not KINDS[r.kind].local,
        )
        for r in eff.receivers
    }
    return notifiers, eff.route or RouteConfig(receivers=list(notifiers)), policies


def trim_memory() -> None:
    """Hand freed heap back to the system after a burst (glibc keeps it otherwise)."""
    import ctypes

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def quick_to_answer() -> None:
    """Settings of the agent's process that keep pauses off a kill's path (after start-up)."""
    # What start-up made lives as long as the agent: out of the collector's sight, a
    # full collection walks only what came after (0.1-0.3 ms, not 13-19 ms), so neither
    # the collector nor a trim holds a kill's delivery up for long
    gc.collect()
    gc.freeze()
    # the sampler's thread holds the interpreter while it reads /proc; the event loop,
    # back from a system call with a kill in hand, waits for it up to the switch
    # interval, 5 ms by default
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def protect_self(proc_root: Path, adj: int) -> None:
    """Lower our own oom_score_adj so the agent is among the last the kernel kills."""
    try:
        (proc_root / "self" / "oom_score_adj").write_text(str(adj))
    except OSError as e:
        log.warning("could not set oom_score_adj to %d: %s", adj, e.strerror)


class Agent:
    """The wiring of the pipeline; `run()` until `stop` is set.

    `receivers` are those in force, checked by `configchild`; tests give notifiers
    built already, and a reload then changes nothing.
    """

    def __init__(
        self,
        settings: Settings,
        receivers: FileConfig | dict[str, Notifier],
        *,
        source: Callable[[], Follower] | None = None,
    ) -> None:
        self.settings = settings
        self._source = source  # tests: a fake follower instead of the settings' source
        self.metrics = Metrics(settings.metrics_series_ttl_s)
        self.db_path = settings.state_path / "oomwatch.db"
        self.api_token = settings.api_token  # read at start: a missing file is a usage error
        self.store = Store(self.db_path)
        self.boot_id = read_boot_id(settings.proc_root)
        self.sampler = Sampler(settings.proc_root, settings.sys_root)
        self.node = this_node(self.boot_id, settings.hostname)
        self.pods, self.pod_watcher = _kubernetes(settings, self.node.hostname)
        if self.pods is not None:
            pods = self.pods
            self.metrics.pods_known.set_function(lambda: len(pods.pods))
        self._fixed_notifiers = isinstance(receivers, dict)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reloading = asyncio.Lock()
        if isinstance(receivers, FileConfig):
            notifiers, self.route, policies = build_notifiers(settings, receivers, self.store)
        else:
            notifiers = receivers
            self.route, policies = RouteConfig(receivers=list(notifiers)), {}
        self.dispatcher = Dispatcher(
            self.store,
            notifiers,
            self.metrics,
            max_age_s=settings.delivery_max_age_s,
            policies=policies,
        )
        self.health = HealthState(stale_after_s=max(3 * settings.sample_interval, 30.0))
        self.supervisor = Supervisor(self.health, self.metrics, RESTART_DELAY_S)
        self.follower: Follower | None = None
        self.silences = silences.load(settings.silences_file)
        self.ingest = Ingest(
            self.store,
            IncidentBuilder(self.node, self.sampler.cache, self.pods),
            Conditions(settings.thresholds, renotify_s=settings.repeat_interval_s),
            self.metrics,
            boot_id=self.boot_id,
            routes=lambda: self.route,
            silenced=lambda: self.silences,
            on_new=self.dispatcher.wake,
            pagers=lambda: {n for n, p in self.dispatcher.policies.items() if p.pages},
            degraded=self._degraded,
            oom_counter=self.sampler.vmstat_oom_kill,
        )
        self._samples = 0
        self._trim_due = False
        self._sample_logged_at = -60.0

    @property
    def notifiers(self) -> dict[str, Notifier]:
        """The notifiers in force (the dispatcher owns them)."""
        return self.dispatcher.notifiers

    # -- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part under the supervisor until `stop`, then flush and close."""
        server = serve(
            self.settings.listen,
            make_app(self.metrics.registry, self.health, self.db_path, self.api_token),
        )
        sup = self.supervisor
        sup.start("source", self._follow)
        sup.start("sampler", self._sample_forever)
        sup.start("dispatcher", self.dispatcher.run)
        sup.start("files", self._watch_files)
        sup.start("backlog", self._flush_backlog)
        if self.pod_watcher is not None:
            sup.start("pods", self.pod_watcher.run)
        systemd = Notify(os.environ)
        if systemd.enabled:
            sup.start("systemd", lambda: notify_forever(systemd, self.health, self._status))
        try:
            await stop.wait()
        finally:
            if systemd.enabled:
                systemd.send("STOPPING=1", "STATUS=stopping")
            await sup.stop()
            server.shutdown()
            server.server_close()
            for n in self.notifiers.values():
                await n.aclose()
            self._close_follower()
            self.store.close()

    def _status(self) -> str:
        """One line for `systemctl status`: what is read, what waits, what is wrong."""
        source = self.follower.name if self.follower is not None else "no source yet"
        parts = [f"reading {source}", f"{self.store.pending()} deliveries pending"]
        if self.health.degraded:
            parts.append(self.health.degraded)
        parts.extend(f"{k} {v}" for k, v in sorted(self.health.failed.items()))
        return "; ".join(parts)

    def _close_follower(self) -> None:
        self.health.ready = False
        self.ingest.save_cursor()
        if self.follower is not None:
            self.metrics.source_up.labels(self.follower.name).set(0)
            self.follower.close()
            self.follower = None

    async def _follow(self) -> None:
        """Follow the source until it fails (the supervisor reopens it)."""
        try:
            await self._read_source()
        finally:
            self._close_follower()

    async def _read_source(self) -> None:
        follower = self.follower = self._open_source()
        _, extra = self.store.cursor(follower.name)
        same_boot = extra.get("boot_id") == self.boot_id
        ingest = self.ingest
        if ingest.reconciler is None:
            saved = extra.get("oom_kill_accounted") if same_boot else None
            if isinstance(saved, int):
                ingest.reconciler = Reconciler(saved, None)
            else:  # fresh: count from now; replayed older kills are history
                ingest.reconciler = Reconciler(
                    self.sampler.vmstat_oom_kill(), _uptime(self.settings.proc_root)
                )
        scanner = LogScanner(reference=None)
        # save where reading starts, so that a crash before the first record still
        # resumes from here, not from "now" on the next start
        ingest.record([], source=follower.name, cursor=follower.cursor)
        self.metrics.source_up.labels(follower.name).set(1)
        self.health.ready = True
        log.info("reading the kernel log from %s", follower.name)
        async for batch in follower.batches():
            ingest.batch(batch, follower.name, scanner)

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

        The file is read and checked in a child process (`configchild`), so the loop
        goes on meanwhile. Deliveries already queued for a receiver that is gone fail
        as "no longer configured"; the old notifiers are closed a little later, once
        in-flight sends are done.
        """
        if self.settings.config is None or self._fixed_notifiers:
            return
        self._background(self._reload_config())

    async def _reload_config(self) -> None:
        async with self._reloading:  # one at a time: the last change read is the one in force
            try:
                receivers = await configchild.receivers(self.settings)
                notifiers, route_tree, policies = build_notifiers(
                    self.settings, receivers, self.store
                )
            except OomwatchError as e:
                log.error("%s; the configuration in force stays", e)
                return
            old = self.notifiers
            self.route = route_tree
            self.dispatcher.replace(notifiers, policies)
            log.info("configuration reloaded: receivers %s", ", ".join(notifiers) or "none")
            asyncio.get_running_loop().call_later(CLOSE_OLD_NOTIFIERS_S, self._close_later, old)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)

    def _close_later(self, old: dict[str, Notifier]) -> None:
        for n in old.values():
            self._background(n.aclose())

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

    def _degraded(self, why: str | None) -> None:
        self.health.degraded = why

    async def _sample_forever(self) -> None:
        interval = self.settings.sample_interval
        pruned = 0.0
        while True:
            started = time.monotonic()
            try:
                self._keep_state(started - pruned > PRUNE_EVERY_S)
                if started - pruned > PRUNE_EVERY_S:
                    pruned = started
                snap = await asyncio.to_thread(self._sample_and_checkpoint)
                self.metrics.sample_duration.observe(time.monotonic() - started)
                self._after_sample(snap)
            except Exception as e:  # noqa: BLE001 - one bad sample must not stop sampling
                self._sample_failed(e)
            self.metrics.workloads.expire()
            self.health.beat()
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))

    def _sample_and_checkpoint(self) -> Snapshot:
        """In a worker thread: new bodies compressed, the log copied in, a memory sample."""
        self.store.compress_bodies()
        self.store.checkpoint()
        return self.sampler.sample()

    def _keep_state(self, prune: bool) -> None:
        """The state database: still the file at its path, what waits in memory written."""
        self.store.keep_file()
        self.ingest.save_cursor()
        if self.ingest.unstored:
            self.ingest.store_unstored()
        if prune and not self.ingest.unstored:
            self.store.prune(time.time() - KEEP_INCIDENTS_S)

    def _sample_failed(self, e: Exception) -> None:
        """One line a minute: a sample's error repeats every interval until it is fixed."""
        now = time.monotonic()
        if now - self._sample_logged_at >= 60:
            self._sample_logged_at = now
            log.error("memory sample failed: %s: %s", type(e).__name__, e)

    def _after_sample(self, snap: Snapshot) -> None:
        self._samples += 1
        if self.ingest.burst or self.dispatcher.busy or self._samples <= 2:
            # after a burst, and after start-up (whose garbage is the largest)
            self.ingest.burst = self.dispatcher.busy = False
            self._trim_due = True
        if self._trim_due and time.monotonic() - self.ingest.read_at >= TRIM_QUIET_S:
            # a collection and a trim hold the heap for tens of milliseconds: not
            # while records stream in, or a flood overruns the kernel's buffer
            self._trim_due = False
            trim_memory()
        self.ingest.sample(snap)

    async def _flush_backlog(self) -> None:
        """Send a first start's summary soon after the log's older kills are all read."""
        while True:
            await asyncio.sleep(0.5 if self.ingest.backlog is not None else 60.0)
            self.ingest.flush_backlog()

    def _first_start(self, source: str) -> None:
        """No saved cursor: what the log already holds goes out as one summary."""
        if self.settings.first_start != "summary" or self.store.cursor(source)[0] is not None:
            return
        uptime = read_uptime(self.settings.proc_root)
        booted = datetime.now(UTC) - timedelta(seconds=uptime) if uptime else None
        self.ingest.backlog = Backlog.now(uptime, booted)

    def _open_source(self) -> Follower:
        if self._source is not None:
            follower = self._source()
            self._first_start(follower.name)
            return follower
        s = self.settings
        order = list(SOURCES) if s.source == "auto" else [s.source]
        errors = []
        for name in order:
            cursor, _ = self.store.cursor(name)
            try:
                follower = SOURCES[name].follow(s, cursor, s.first_start == "new")
            except (OSError, UsageError) as e:
                errors.append(f"{name}: {e}")
                continue
            self._first_start(name)
            return follower
        raise UsageError("no kernel log source can be read: " + "; ".join(errors))


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


def run_agent(settings: Settings, receivers: FileConfig) -> int:
    """Run with the receivers in force until SIGTERM or SIGINT; the exit code."""
    one_malloc_arena()
    protect_self(settings.proc_root, settings.oom_score_adj)
    try:
        agent = Agent(settings, receivers)
    except StoreError as e:  # read-only, full, not ours: the user's to fix, as a setting
        raise UsageError(f"{e} (OOMWATCH_STATE_DIR)") from None
    from oomwatch.notify.sample import kmsg_records

    agent.ingest.warm(kmsg_records())
    quick_to_answer()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, agent.reload)
        log.info(
            "oomwatch agent on %s (pid %d), state in %s, receivers: %s, http on %s",
            agent.node.hostname,
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
