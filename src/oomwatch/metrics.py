"""The agent's Prometheus metrics, in a registry of their own."""

from __future__ import annotations

import time
from collections import OrderedDict

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)

from oomwatch import __version__
from oomwatch.model.parts import PodRef

# a `_created` series for every counter doubles the series count and no query uses it
disable_created_metrics()  # type: ignore[no-untyped-call]

MAX_WORKLOAD_SERIES = 1000
MAX_LABEL = 256


class Metrics:
    """Every metric the agent exports on /metrics."""

    def __init__(self, series_ttl_s: float = 3600.0) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        Info("oomwatch_build", "The running oomwatch", registry=r).info({"version": __version__})
        self.workloads = WorkloadKills(r, series_ttl_s)
        self.kills = Counter(
            "oomwatch_kills", "OOM kills seen in the log", ["killer", "constraint"], registry=r
        )
        self.incidents = Counter("oomwatch_incidents", "Incidents stored", ["kind"], registry=r)
        self.silenced = Counter(
            "oomwatch_incidents_silenced", "Incidents a silence kept quiet", ["kind"], registry=r
        )
        self.log_gaps = Counter("oomwatch_log_gaps", "Overruns of the kernel log", registry=r)
        self.records_lost = Counter(
            "oomwatch_log_records_lost",
            "Kernel log records overwritten before they were read",
            registry=r,
        )
        self.unseen_kills = Counter(
            "oomwatch_unseen_kills",
            "OOM kills the kernel counted but the log never showed",
            registry=r,
        )
        self.malformed = Counter(
            "oomwatch_malformed_lines", "OOM lines that could not be read", registry=r
        )
        self.source_up = Gauge(
            "oomwatch_source_up", "Whether the log source is being read", ["source"], registry=r
        )
        self.sample_duration = Histogram(
            "oomwatch_sample_duration_seconds", "Time to take one memory sample", registry=r
        )
        self.queue_depth = Gauge(
            "oomwatch_queue_depth", "Deliveries waiting in the outbox", ["receiver"], registry=r
        )
        self.paused_until = Gauge(
            "oomwatch_receiver_paused_until_seconds",
            "Until when a receiver's rate limit pauses its deliveries (Unix time; 0: not paused)",
            ["receiver"],
            registry=r,
        )
        self.task_restarts = Counter(
            "oomwatch_task_restarts", "Agent tasks restarted after they died", ["task"], registry=r
        )
        self.task_up = Gauge(
            "oomwatch_task_up", "Whether each agent task is running", ["task"], registry=r
        )
        self.unconfirmed = Counter(
            "oomwatch_unconfirmed_kills",
            "Kills read from a file that the kernel's oom_kill counter did not count",
            registry=r,
        )
        self.unstored = Gauge(
            "oomwatch_unstored_incidents",
            "Incidents kept in memory because the state database cannot be written",
            registry=r,
        )
        self.pods_known = Gauge(
            "oomwatch_pods_known", "Pods of this node the Kubernetes watch has seen", registry=r
        )
        self.deliveries = Counter(
            "oomwatch_deliveries", "Delivery attempts", ["receiver", "result"], registry=r
        )
        self.dropped = Counter(
            "oomwatch_deliveries_dropped",
            "Deliveries dropped because they grew too old",
            ["receiver"],
            registry=r,
        )


class WorkloadKills:
    """Kills per pod (or, off Kubernetes, per cgroup); series quiet for `ttl_s` are dropped."""

    def __init__(self, registry: CollectorRegistry, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.pods = Counter(
            "oomwatch_container_oom_kills",
            "OOM kills in each container of a pod",
            ["namespace", "pod", "container", "owner_kind", "owner"],
            registry=registry,
        )
        self.cgroups = Counter(
            "oomwatch_cgroup_oom_kills",
            "OOM kills in each cgroup that is not a pod's",
            ["cgroup"],
            registry=registry,
        )
        # series -> when it last counted a kill, oldest first
        self._seen: OrderedDict[tuple[Counter, tuple[str, ...]], float] = OrderedDict()

    def count(self, pod: PodRef | None, cgroup: str | None, now: float | None = None) -> None:
        """One kill, in a pod's container or else in a cgroup."""
        values: tuple[str | None, ...]
        if pod is not None:
            family = self.pods
            values = (pod.namespace, pod.pod, pod.container, pod.owner_kind, pod.owner_name)
        elif cgroup:
            family, values = self.cgroups, (cgroup,)
        else:
            return
        labels = tuple((v or "")[:MAX_LABEL] for v in values)
        family.labels(*labels).inc()
        self._seen[(family, labels)] = time.monotonic() if now is None else now
        self._seen.move_to_end((family, labels))
        while len(self._seen) > MAX_WORKLOAD_SERIES:
            (old, old_labels), _ = self._seen.popitem(last=False)
            old.remove(*old_labels)

    def expire(self, now: float | None = None) -> int:
        """Drop the series with no kill for `ttl_s`; how many went."""
        now = time.monotonic() if now is None else now
        gone = 0
        while self._seen:
            (family, labels), at = next(iter(self._seen.items()))
            if now - at <= self.ttl_s:
                break
            del self._seen[(family, labels)]
            family.remove(*labels)
            gone += 1
        return gone

    def __len__(self) -> int:
        return len(self._seen)
