"""The agent's Prometheus metrics, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric the agent exports on /metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
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
