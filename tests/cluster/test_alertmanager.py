"""Five agents and a real Alertmanager HA pair: one notification per workload per receiver."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.agentproc import AgentProcess, free_ports
from tests.k8s_api import KubeAPI, pod
from tests.servers import Received, Recorder

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "packaging" / "alertmanager"
AM = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
NODES = [f"node-{i}" for i in range(1, 6)]
HOSTILE = "<!here>&*x*"  # a process name is chosen by whoever runs the process

pytestmark = pytest.mark.skipif(
    AM is None, reason="needs Debian's prometheus-alertmanager (.ci/run installs it)"
)


def uid(i: int) -> str:
    """The UID of the pod numbered i."""
    return f"0000000{i}-aaaa-4bbb-8ccc-dddddddddddd"


def cid(i: int) -> str:
    """The container id of the pod numbered i."""
    return f"{i:02d}" * 32


def kern_log_kill(node: str, i: int, comm: str) -> str:
    """The kern.log lines of a kill in the container of pod i, stamped now."""
    stamp = f"{time.strftime('%b %e %H:%M:%S')} {node} kernel: [ {1000 + i}.0000"
    pid = 4000 + i
    memcg = f"/kubepods/burstable/pod{uid(i)}"
    lines = [
        f"01] {comm} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        "02] memory: usage 262144kB, limit 262144kB, failcnt 7",
        "03] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
        f"oom_memcg={memcg},task_memcg={memcg}/{cid(i)},task={comm},pid={pid},uid=1000",
        f"04] Memory cgroup out of memory: Killed process {pid} ({comm}) total-vm:900000kB, "
        "anon-rss:250000kB, file-rss:1000kB, shmem-rss:0kB, UID:1000 pgtables:600kB "
        "oom_score_adj:985",
    ]
    return "".join(f"{stamp}{line}\n" for line in lines)


def proc_without_counter(path: Path) -> Path:
    """This host's /proc without vmstat, for a simulated node.

    The real kernel's oom_kill counter counts none of its kills: none is checked.
    """
    path.mkdir()
    for name in os.listdir("/proc"):
        if name != "vmstat" and not name.isdigit():
            (path / name).symlink_to(f"/proc/{name}")
    return path


class Alertmanagers:
    """Two real Alertmanagers on 127.0.0.1 that gossip with each other (an HA pair)."""

    def __init__(self, tmp: Path, config: str) -> None:
        assert AM is not None
        cfg = tmp / "alertmanager.yml"
        cfg.write_text(config)
        # four different ports (gossip is TCP and UDP on its port)
        ports = free_ports(4, udp=True)
        self.web, cluster = ports[:2], ports[2:]
        self.procs: list[subprocess.Popen[bytes]] = []
        for n in range(2):
            with (tmp / f"am{n}.log").open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [
                            AM,
                            f"--config.file={cfg}",
                            f"--storage.path={tmp / f'am{n}'}",
                            f"--web.listen-address=127.0.0.1:{self.web[n]}",
                            f"--cluster.listen-address=127.0.0.1:{cluster[n]}",
                            f"--cluster.advertise-address=127.0.0.1:{cluster[n]}",
                            f"--cluster.peer=127.0.0.1:{cluster[1 - n]}",
                            "--cluster.peer-timeout=2s",
                            "--cluster.gossip-interval=100ms",
                            "--cluster.pushpull-interval=2s",
                        ],
                        stdout=log,
                        stderr=log,
                    )
                )

    @property
    def urls(self) -> list[str]:
        """Their base URLs."""
        return [f"http://127.0.0.1:{p}" for p in self.web]

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until each sees the other as a peer and says its cluster is ready."""
        deadline = time.monotonic() + timeout_s
        for url in self.urls:
            while True:
                try:
                    status = httpx.get(f"{url}/api/v2/status", timeout=2).json()
                    if (
                        status["cluster"]["status"] == "ready"
                        and len(status["cluster"]["peers"]) == 2
                    ):
                        break
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                assert time.monotonic() < deadline, f"{url} never formed the pair"
                time.sleep(0.1)

    def metric(self, n: int, name: str) -> float:
        """The sum of a metric's samples on instance n."""
        text = httpx.get(f"{self.urls[n]}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{")
        )

    def stop(self) -> None:
        """End both (the pids started here) and wait for them."""
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder, KubeAPI]]:
    """A webhook receiver, a Slack-incoming-webhook-like server, a Kubernetes-API-like one."""
    hook, slack, api = Recorder().start(), Recorder().start(), KubeAPI()
    api.hold_s = 600.0
    yield hook, slack, api
    hook.stop()
    slack.stop()
    api.stop()


def example_config(hook: Recorder, slack: Recorder) -> str:
    """The documented example, only its receivers' URLs and template path made local."""
    text = (EXAMPLE / "alertmanager.yml").read_text()
    text = text.replace("/etc/alertmanager/templates/oomwatch.tmpl", str(EXAMPLE / "oomwatch.tmpl"))
    text = text.replace("http://tools.example/oom", f"{hook.url}/am")
    return text.replace("https://hooks.slack.com/services/T000/B000/XXXX", f"{slack.url}/slack")


def group_of(r: Received) -> str:
    """The owner label a webhook notification of Alertmanager was grouped by."""
    return str(r.json()["groupLabels"].get("owner"))


def test_one_notification_per_workload_across_five_nodes(
    servers: tuple[Recorder, Recorder, KubeAPI], tmp_path: Path
) -> None:
    """Kills of one Deployment on five nodes: one message per receiver naming all five."""
    hook, slack, api = servers
    for n, node in enumerate(NODES, start=1):
        p = pod(f"api-7f9c5d-{n}", uid(n), cid(n))
        p["spec"]["nodeName"] = node
        api.events.append(("ADDED", p))
    web = pod("web-55d9-1", uid(9), cid(9), container="web", owner=("ReplicaSet", "web-55d9"))
    web["metadata"]["labels"] = {"pod-template-hash": "55d9"}
    api.events.append(("ADDED", web))  # on node-1, another Deployment
    ams = Alertmanagers(tmp_path, example_config(hook, slack))
    agents: list[AgentProcess] = []
    try:
        ams.wait_ready()
        receivers = [{"name": f"am{n}", "alertmanager": {"url": u}} for n, u in enumerate(ams.urls)]
        config = tmp_path / "oomwatch.yaml"
        config.write_text(yaml.safe_dump({"receivers": receivers}))
        for node in NODES:
            home = tmp_path / node
            home.mkdir()
            (home / "kern.log").write_text("")
            agents.append(
                AgentProcess(
                    home,
                    {
                        "OOMWATCH_HOSTNAME": node,
                        "OOMWATCH_SOURCE": "file",
                        "OOMWATCH_LOG_FILE": str(home / "kern.log"),
                        "OOMWATCH_PROC_ROOT": str(proc_without_counter(home / "proc")),
                        "OOMWATCH_KUBERNETES_API_URL": api.url,
                        "OOMWATCH_CONFIG": str(config),
                        "OOMWATCH_CONSOLE": "off",
                    },
                ).start()
            )
        for a in agents:
            a.wait_metric("oomwatch_pods_known", at_least=1)
        killed_at = time.monotonic()
        for n, (node, a) in enumerate(zip(NODES, agents, strict=True), start=1):
            with (a.state_dir / "kern.log").open("a") as log:
                log.write(kern_log_kill(node, n, "java"))
        with (agents[0].state_dir / "kern.log").open("a") as log:
            log.write(kern_log_kill("node-1", 9, HOSTILE))
        for a in agents:  # each agent posted to both Alertmanagers
            a.settled()
        got = hook.wait_for(lambda r: r.path == "/am", count=2, timeout_s=60)
        assert sorted(map(group_of, got)) == ["api", "web"]
        slack.wait_for(lambda r: r.path == "/slack", count=2, timeout_s=60)
        # the second instance waits out its peer timeout, then finds the first's
        # notification log entries gossiped to it: it queried them for each of the two
        # groups' two integrations, and sent nothing
        deadline = time.monotonic() + 60
        while ams.metric(1, "alertmanager_nflog_queries_total") < 4:
            assert time.monotonic() < deadline, "the second Alertmanager never flushed"
            time.sleep(0.1)
        sent = ams.metric(0, "alertmanager_notifications_total") + ams.metric(
            1, "alertmanager_notifications_total"
        )
        assert sent == 4  # two groups, two integrations: once each across the pair
        assert len([r for r in hook.received if r.path == "/am"]) == 2
        assert len([r for r in slack.received if r.path == "/slack"]) == 2
        (api_group,) = [r.json() for r in hook.received if group_of(r) == "api"]
        assert api_group["status"] == "firing"
        assert sorted(a["labels"]["host"] for a in api_group["alerts"]) == NODES
        assert api_group["groupLabels"] == {
            "alertname": "OOMKill",
            "namespace": "shop",
            "owner_kind": "Deployment",
            "owner": "api",
        }
        (api_slack,) = [
            r.json() for r in slack.received if "Deployment shop/api" in r.body.decode()
        ]
        (attachment,) = api_slack["attachments"]
        assert attachment["title"] == (
            "OOM-killed: Deployment shop/api, 5 alerts (one per node, container and process name)"
        )
        for n, node in enumerate(NODES, start=1):
            assert f"*{node}* pod api-7f9c5d-{n} container api: java killed" in attachment["text"]
        (web_slack,) = [r.json() for r in slack.received if "shop/web" in r.body.decode()]
        text = web_slack["attachments"][0]["text"]
        assert "pod web-55d9-1 container web: &lt;!here&gt;&amp;*x* killed" in text
        assert "<!here>" not in text
        first = min(r.at for r in hook.received + slack.received)
        print(f"\nkill -> first notification through Alertmanager: {first - killed_at:.2f} s")
    finally:
        for a in agents:
            a.stop()
        ams.stop()


def test_a_kill_alert_resolves_by_itself_as_documented(
    servers: tuple[Recorder, Recorder, KubeAPI], tmp_path: Path
) -> None:
    """A kill's alert ends `kill_alert_ttl_s` after it: resolved to the webhook, not to Slack.

    The example's route with its timings shortened (group_wait 1 s, group_interval
    2 s) and the alert's life 4 s instead of 15 minutes; nothing else changed.
    """
    hook, slack, api = servers
    p = pod("api-7f9c5d-1", uid(1), cid(1))
    p["spec"]["nodeName"] = "node-1"
    api.events.append(("ADDED", p))
    config_text = example_config(hook, slack).replace("group_wait: 10s", "group_wait: 1s")
    config_text = config_text.replace("group_interval: 5m", "group_interval: 2s")
    assert "group_wait: 1s" in config_text
    assert "group_interval: 2s" in config_text
    ams = Alertmanagers(tmp_path, config_text)
    agent: AgentProcess | None = None
    try:
        ams.wait_ready()
        receivers = [
            {"name": f"am{n}", "alertmanager": {"url": u, "kill_alert_ttl_s": 4}}
            for n, u in enumerate(ams.urls)
        ]
        config = tmp_path / "oomwatch.yaml"
        config.write_text(yaml.safe_dump({"receivers": receivers}))
        home = tmp_path / "node-1"
        home.mkdir()
        (home / "kern.log").write_text("")
        agent = AgentProcess(
            home,
            {
                "OOMWATCH_HOSTNAME": "node-1",
                "OOMWATCH_SOURCE": "file",
                "OOMWATCH_LOG_FILE": str(home / "kern.log"),
                "OOMWATCH_PROC_ROOT": str(proc_without_counter(home / "proc")),
                "OOMWATCH_KUBERNETES_API_URL": api.url,
                "OOMWATCH_CONFIG": str(config),
                "OOMWATCH_CONSOLE": "off",
            },
        ).start()
        agent.wait_metric("oomwatch_pods_known", at_least=1)
        with (home / "kern.log").open("a") as log:
            log.write(kern_log_kill("node-1", 1, "java"))
        agent.settled()
        got = hook.wait_for(lambda r: r.path == "/am", count=2, timeout_s=60)
        firing, resolved = (r.json() for r in got)
        assert firing["status"] == "firing"
        assert resolved["status"] == "resolved"
        (alert,) = resolved["alerts"]
        assert alert["labels"]["pod"] == "api-7f9c5d-1"
        starts = dt.datetime.fromisoformat(alert["startsAt"])
        ends = dt.datetime.fromisoformat(alert["endsAt"])
        assert abs((ends - starts).total_seconds() - 4) < 0.01
        # both flushes (firing, resolved) done by each instance for both integrations
        deadline = time.monotonic() + 60
        while ams.metric(1, "alertmanager_nflog_queries_total") < 4:
            assert time.monotonic() < deadline, "the second Alertmanager never flushed twice"
            time.sleep(0.1)
        assert len([r for r in hook.received if r.path == "/am"]) == 2
        # send_resolved: false for Slack, as the example says: firing messages only
        # (Alertmanager's notifications_total counts the filtered resolved flush for
        # Slack as well: what the Slack-like server received is the fact). The pair may
        # send the firing one twice when gossip is slower than the peer timeout: its
        # deduplication is at least once (docs/cluster.md)
        posted = [r.json() for r in slack.received if r.path == "/slack"]
        assert posted
        assert all(m["attachments"][0]["color"] == "danger" for m in posted)  # firing
    finally:
        if agent is not None:
            agent.stop()
        ams.stop()


def test_the_slack_message_is_bounded_whatever_the_labels(
    servers: tuple[Recorder, Recorder, KubeAPI], tmp_path: Path
) -> None:
    """30 alerts of one workload, every free-text label long and made of what Slack escapes.

    Posted to the pair as an agent would; the message the real Alertmanager renders
    with the shipped template lists 10, says how many there are, escapes every value
    and stays under Slack's 40,000 characters.
    """
    hook, slack, _api = servers
    config_text = example_config(hook, slack).replace("group_wait: 10s", "group_wait: 1s")
    ams = Alertmanagers(tmp_path, config_text)
    worst = "&<>" * 400  # 1,200 characters, 5 of each once escaped
    try:
        ams.wait_ready()
        alerts = [
            {
                "labels": {
                    "alertname": "OOMKill",
                    "namespace": "shop",
                    "owner_kind": "Deployment",
                    # Kubernetes names are DNS names (no & < >): the longest one
                    "owner": "api-" + "x" * 249,
                    "host": f"node-{n}" + worst,
                    "pod": f"api-{n}" + worst,
                    "container": "api" + worst,
                    "comm": f"{n}" + worst,
                },
                "annotations": {"description": worst * 3},
            }
            for n in range(30)
        ]
        for url in ams.urls:
            httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()
        (got,) = slack.wait_for(lambda r: r.path == "/slack", timeout_s=60)
        (attachment,) = got.json()["attachments"]
        text, title = attachment["text"], attachment["title"]
        assert text.startswith("The first 10 of 30 alerts:")
        assert text.count("• *node-") == 10
        assert len(text) < 40_000
        assert len(title) < 2_000
        assert "30 alerts" in title
        for part in (text, title):
            assert "<" not in part
            assert ">" not in part
            assert "&&" not in part
    finally:
        ams.stop()
