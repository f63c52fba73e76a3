"""/metrics: kills per workload with bounded series, build info, process metrics, promtool-clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oomwatch import __version__
from oomwatch.agent import Agent
from oomwatch.metrics import MAX_LABEL, MAX_WORKLOAD_SERIES, Metrics
from oomwatch.model.parts import PodRef
from oomwatch.notify.sample import REPORT
from oomwatch.testing import FakeFollower, RecordingNotifier
from tests.enrich.test_kubernetes import CID, UID
from tests.k8s_api import KubeAPI, pod
from tests.test_agent_inprocess import get, run_agent
from tests.waits import until

API = PodRef("shop", "api-7f9c-x2", container="api", owner_kind="Deployment", owner_name="api")


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Each sample of `name` in an exposition: its sorted labels -> value."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_kills_are_counted_per_pod_container_and_per_cgroup() -> None:
    """A pod's kills carry namespace, pod, container and owner; other kills their cgroup."""
    m = Metrics()
    m.workloads.count(API, "/kubepods/x", now=0)
    m.workloads.count(API, "/kubepods/x", now=1)
    m.workloads.count(None, "/system.slice/db.service", now=2)
    m.workloads.count(None, None, now=3)  # nowhere to count it: no series
    text = generate_latest(m.registry).decode()
    pods = samples(text, "oomwatch_container_oom_kills_total")
    assert pods == {
        (
            ("container", "api"),
            ("namespace", "shop"),
            ("owner", "api"),
            ("owner_kind", "Deployment"),
            ("pod", "api-7f9c-x2"),
        ): 2.0
    }
    cgroups = samples(text, "oomwatch_cgroup_oom_kills_total")
    assert cgroups == {(("cgroup", "/system.slice/db.service"),): 1.0}
    assert len(m.workloads) == 2


def test_quiet_series_are_dropped_and_the_count_is_bounded() -> None:
    """A series with no kill for the TTL goes; past the bound the longest quiet goes first."""
    m = Metrics(series_ttl_s=100)
    m.workloads.count(API, None, now=0)
    m.workloads.count(None, "/a", now=50)
    assert m.workloads.expire(now=120) == 1  # the pod's, quiet for 120 s
    text = generate_latest(m.registry).decode()
    assert samples(text, "oomwatch_container_oom_kills_total") == {}
    assert samples(text, "oomwatch_cgroup_oom_kills_total") == {(("cgroup", "/a"),): 1.0}
    for i in range(MAX_WORKLOAD_SERIES + 5):
        m.workloads.count(None, f"/many/{i}", now=200 + i)
    assert len(m.workloads) == MAX_WORKLOAD_SERIES
    kept = samples(generate_latest(m.registry).decode(), "oomwatch_cgroup_oom_kills_total")
    assert len(kept) == MAX_WORKLOAD_SERIES
    assert (("cgroup", "/a"),) not in kept
    assert (("cgroup", "/many/0"),) not in kept
    assert (("cgroup", f"/many/{MAX_WORKLOAD_SERIES + 4}"),) in kept


def test_a_hostile_cgroup_name_is_cut_and_escaped() -> None:
    """Labels are bounded and the exposition stays parseable whatever the path holds."""
    m = Metrics()
    evil = '/x"\n} 1\nfake_metric 9\\' + "y" * 1000
    m.workloads.count(None, evil, now=0)
    text = generate_latest(m.registry).decode()
    ((labels, value),) = samples(text, "oomwatch_cgroup_oom_kills_total").items()
    assert value == 1.0
    assert dict(labels)["cgroup"] == evil[:MAX_LABEL]
    assert "fake_metric" not in {f.name for f in text_string_to_metric_families(text)}


def test_the_agent_exposes_build_info_process_metrics_and_no_created(tmp_path: Path) -> None:
    """A kill read by the agent shows in /metrics with build info and process metrics."""
    texts: list[str] = []

    async def body(agent: Agent, f: FakeFollower) -> None:
        f.feed(REPORT.splitlines())
        rec = agent.notifiers["rec"]
        assert isinstance(rec, RecordingNotifier)
        await until(lambda: len(rec.sent) == 1)
        texts.append((await get(agent, "/metrics")).text)

    run_agent(tmp_path, body)
    (text,) = texts
    ((labels, value),) = samples(text, "oomwatch_cgroup_oom_kills_total").items()
    assert value == 1.0
    assert (
        "cri-containerd-25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca"
        in (dict(labels)["cgroup"])
    )
    assert samples(text, "oomwatch_build_info") == {(("version", __version__),): 1.0}
    assert samples(text, "process_resident_memory_bytes")
    assert "_created" not in text
    promtool_clean(text)


def test_a_pod_s_kill_counts_under_its_workload(tmp_path: Path) -> None:
    """With the pod known from the Kubernetes API, the kill counts under its Deployment."""
    api = KubeAPI()
    api.events = [("ADDED", pod("api-7f9c5d-x2k", UID, CID))]
    texts: list[str] = []

    async def body(agent: Agent, f: FakeFollower) -> None:
        pods = agent.pods
        assert pods is not None
        await until(lambda: UID in pods.pods)
        f.feed(REPORT.splitlines())
        rec = agent.notifiers["rec"]
        assert isinstance(rec, RecordingNotifier)
        await until(lambda: len(rec.sent) == 1)
        texts.append((await get(agent, "/metrics")).text)

    try:
        run_agent(tmp_path, body, kubernetes_api_url=api.url, hostname="node-1")
    finally:
        api.stop()
    (text,) = texts
    assert samples(text, "oomwatch_container_oom_kills_total") == {
        (
            ("container", "api"),
            ("namespace", "shop"),
            ("owner", "api"),
            ("owner_kind", "Deployment"),
            ("pod", "api-7f9c5d-x2k"),
        ): 1.0
    }
    assert samples(text, "oomwatch_cgroup_oom_kills_total") == {}
    promtool_clean(text)


def promtool_clean(text: str) -> None:
    """`promtool check metrics` finds nothing to say about the exposition."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert not said.strip(), said


def test_promtool_finds_every_metric_clean() -> None:
    """Every family, with kills of both forms counted, passes promtool's lint."""
    m = Metrics()
    m.workloads.count(API, None)
    m.workloads.count(None, "/system.slice/db.service")
    m.kills.labels("kernel", "memcg").inc()
    m.deliveries.labels("webhook", "sent").inc()
    m.sample_duration.observe(0.01)
    promtool_clean(generate_latest(m.registry).decode())
