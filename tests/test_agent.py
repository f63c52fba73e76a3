"""`oomwatch run` end to end: the agent as a subprocess, real OOM kills, a real webhook receiver.

Root only (memory cgroups, /dev/kmsg); skipped elsewhere with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oomwatch.drill.memcg import MIB, memory_cgroup, start_hog
from tests.agentproc import AgentProcess
from tests.conftest import real_kernel_reason
from tests.kmsg_tail import write_kmsg
from tests.servers import Received, Recorder, SlackLike

pytestmark = pytest.mark.skipif(real_kernel_reason() is not None, reason=real_kernel_reason() or "")


@pytest.fixture
def hook() -> Iterator[Recorder]:
    """A webhook receiver on 127.0.0.1."""
    r = Recorder().start()
    yield r
    r.stop()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Make agents sharing one state directory; all are stopped at the end."""
    made: list[AgentProcess] = []

    def make(**env: str) -> AgentProcess:
        a = AgentProcess(tmp_path / "state", env)
        a.state_dir.mkdir(exist_ok=True)
        made.append(a)
        return a

    yield make
    for a in made:
        if a.proc is not None and a.proc.poll() is None:
            a.kill9()


def oom_kill(
    comm: str,
    *,
    sampled_by: AgentProcess | None = None,
    extra: tuple[str, ...] = (),
    inner: str = "",
    name: str | None = None,
) -> int:
    """OOM-kill a hog named `comm` in its own 32 MiB cgroup (removed after); its pid.

    With `sampled_by`, the kill waits until that agent has taken two whole memory
    samples with the hog alive (its command line and user are then known).
    `inner` nests the cgroup (`docker/<id>`) to imitate a container runtime's layout.
    """
    name = (name or f"oomwatch-test-{uuid.uuid4().hex[:8]}") + (f"/{inner}" if inner else "")
    with memory_cgroup(name, 32 * MIB) as cg, start_hog(cg, comm=comm, argv_extra=extra) as hog:
        if sampled_by is not None:
            sampled_by.wait_metric("oomwatch_sample_duration_seconds_count", more_by=2)
        hog.go()
        assert hog.wait() == -9
        return hog.pid


def kill_of(pid: int) -> Callable[[Received], bool]:
    """Matches the delivery of the kill of `pid`: its own, or a follow-up naming it."""

    def match(r: Received) -> bool:
        inc = r.json()["incident"]
        if inc.get("kind") != "oom_kill":
            return False
        follow = inc.get("followup")
        if follow is not None:
            return str(pid) in follow["pids"]
        return bool(inc["victim"]["pid"] == pid)

    return match


def test_kill_reaches_the_webhook_with_enrichment(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """A real kill arrives once with pid, comm, full command line, user, cgroup and explanation."""
    agent = agents(OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook").start()
    pid = oom_kill("oomwatch-e2e", sampled_by=agent, extra=("--marker", "e2e-42"))
    (got,) = hook.wait_for(kill_of(pid))
    body = got.json()
    assert body["version"] == 1
    assert body["status"] == "firing"
    assert len(body["key"]) == 20
    inc = body["incident"]
    assert inc["victim"]["comm"] == "oomwatch-e2e"
    assert inc["victim"]["cmdline"][-2:] == ["--marker", "e2e-42"]
    assert inc["victim"]["user"] == "root"
    assert inc["victim"]["rss_history"], "the sampler saw the victim alive"
    assert inc["oom_memcg"].startswith("/oomwatch-test-")
    assert inc["memcg"]["limit_kb"] == 32768
    assert inc["container"] is None
    assert inc["node"]["boot_id"]
    assert inc["explanation"]["headline"].startswith(f"oomwatch-e2e (pid {pid}) was killed")
    assert got.headers["Idempotency-Key"].endswith("/webhook")
    agent.settled()
    assert len(hook.wait_for(kill_of(pid), timeout_s=0)) == 1
    assert 'oomwatch_kills_total{constraint="CONSTRAINT_MEMCG",killer="kernel"}' in agent.metrics()
    # stored as text on the kill's path, compressed by the sampler's thread after it
    assert stored_body_type(agent, pid, until="blob") == "blob"
    assert agent.stop() == 0


def stored_body_type(agent: AgentProcess, pid: int, until: str, timeout_s: float = 20.0) -> str:
    """SQLite's type of the body stored for the kill of `pid`, once it is `until` (or late)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.closing(sqlite3.connect(agent.state_dir / "oomwatch.db", timeout=5)) as c:
            row = c.execute("SELECT typeof(body) FROM incidents WHERE pid = ?", (pid,)).fetchone()
        if (row and row[0] == until) or time.monotonic() > deadline:
            return str(row[0]) if row else "missing"
        time.sleep(0.05)


def test_container_identity_from_a_real_kill(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """A kill in a cgroup laid out like Docker's names the container in the incident."""
    cid = uuid.uuid4().hex * 2
    agents(OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook").start()
    pid = oom_kill("oomwatch-ctr", inner=f"docker/{cid}")
    (got,) = hook.wait_for(kill_of(pid))
    inc = got.json()["incident"]
    assert inc["task_memcg"].endswith(f"/docker/{cid}")
    assert inc["container"] == {
        "runtime": "docker",
        "id": cid,
        "pod_uid": None,
        "qos_class": None,
        "systemd_unit": None,
    }
    assert inc["where"] == f"docker container {cid[:12]}"


def test_kill9_loses_and_repeats_nothing(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """Kills before, during and after a kill -9 of the agent are each reported exactly once."""
    env = {"OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook"}
    first = agents(**env).start()
    before = oom_kill("oomwatch-before")
    assert hook.wait_for(kill_of(before))
    # the crash comes after the delivery was recorded: a crash between the POST and
    # its record is the at-least-once case, tested with its key below
    first.settled()
    first.kill9()
    during = oom_kill("oomwatch-during")
    second = agents(**env).start()
    after = oom_kill("oomwatch-after")
    for pid in (before, during, after):
        assert len(hook.wait_for(kill_of(pid))) == 1, pid
    second.settled()
    for pid in (before, during, after):
        assert len(hook.wait_for(kill_of(pid), timeout_s=0)) == 1, pid


def test_overrun_while_stopped_is_counted_and_reconciled(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """An overrun while the agent is down: the gap has its exact size, the kill is reconciled.

    The kill's record is overwritten by a flood before the agent restarts; the
    /proc/vmstat counter still shows it.
    """
    env = {"OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook"}
    agent = agents(**env).start()
    agent.wait_cursor("kmsg")
    agent.kill9()
    db = sqlite3.connect(agent.state_dir / "oomwatch.db")
    saved = db.execute("SELECT value FROM cursors WHERE source = 'kmsg'").fetchone()[0]
    db.close()
    saved_seq = int(saved.split(":")[1])
    oom_kill("oomwatch-lost")
    flood_kmsg(8000)  # over 1 MiB: more than the ring buffer holds
    first_seq = _first_kmsg_seq()
    agents(**env).start()
    (gap,) = hook.wait_for(lambda r: r.json()["incident"].get("kind") == "log_gap")
    # exact against the ring as it was when the agent opened it: a record the kernel
    # writes meanwhile (a container's teardown, say) pushes one more out
    lost = gap.json()["incident"]["records_lost"]
    assert first_seq - saved_seq - 1 <= lost <= _first_kmsg_seq() - saved_seq - 1
    (unseen,) = hook.wait_for(lambda r: r.json()["incident"].get("kind") == "unseen_kills")
    assert unseen.json()["incident"]["missing"] == 1


def flood_kmsg(records: int) -> None:
    """Write records to /dev/kmsg, with the kernel's write rate limit lifted meanwhile."""
    write_kmsg(f"oomwatch-test flood {i:06d} {'x' * 150}" for i in range(records))


def _first_kmsg_seq() -> int:
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                rec = os.read(fd, 16384)
            except BrokenPipeError:
                continue
            return int(rec.split(b",")[1])
    finally:
        os.close(fd)


def test_cgroup_near_its_limit_opens_then_resolves(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """A cgroup held near its limit opens a condition, which resolves when usage falls."""
    agents(
        OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook",
        OOMWATCH_SAMPLE_INTERVAL="0.2",
        OOMWATCH_THRESHOLDS__MIN_DURATION_S="0.5",
        OOMWATCH_THRESHOLDS__CGROUP_USAGE_WARN_PCT="75",
    ).start()
    name = f"oomwatch-test-{uuid.uuid4().hex[:8]}"

    def about(status: str) -> Callable[[Received], bool]:
        def match(r: Received) -> bool:
            i = r.json()["incident"]
            return bool(
                i.get("kind") == "cgroup_near_limit"
                and i.get("subject") == f"/{name}"
                and i.get("status") == status
            )

        return match

    with memory_cgroup(name, 64 * MIB) as cg:
        with start_hog(cg, comm="oomwatch-near", alloc_mib=54, hold_s=4.0) as hog:
            hog.go()
            (opened,) = hook.wait_for(about("firing"), timeout_s=15)
            assert hog.wait() == 0, "the hog must hold its memory, not be killed"
        (resolved,) = hook.wait_for(about("resolved"), timeout_s=15)
    assert opened.json()["status"] == "firing"
    assert opened.json()["incident"]["value"] > 75
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["key"] == opened.json()["key"]


@pytest.mark.fault
def test_hostile_records_never_stop_the_agent(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """Forged, escaped and invalid records are survived; a hostile process name stays text."""
    agent = agents(OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook").start()
    fd = os.open("/dev/kmsg", os.O_WRONLY)
    try:
        for rec in (
            b"<3>Memory cgroup out of memory: Killed process 1 (init) total-vm:1kB, "
            b"anon-rss:1kB, file-rss:1kB, shmem-rss:0kB\n",
            b"<4>\xff\xfe\x1b[2J invoked oom-killer: gfp_mask=zz\n",
            b"<6>oom-kill:constraint=,task=\x00,pid=,uid=\n",
        ):
            os.write(fd, rec)
    finally:
        os.close(fd)
    pid = oom_kill("<!channel>\nx")
    (got,) = hook.wait_for(kill_of(pid))
    assert got.json()["incident"]["victim"]["comm"] == "<!channel>\nx"
    assert not hook.wait_for(kill_of(1), timeout_s=0.5), "a forged kill must not be believed"
    assert agent.proc is not None
    assert agent.proc.poll() is None
    assert "oomwatch_source_up" in agent.metrics()


def test_sigterm_is_a_clean_shutdown(agents: Callable[..., AgentProcess]) -> None:
    """SIGTERM ends the agent with code 0; its own oom_score_adj was set as configured."""
    agent = agents(OOMWATCH_OOM_SCORE_ADJ="100", OOMWATCH_CONSOLE="false").start()
    assert agent.proc is not None
    # this machine may not lower it (no CAP_SYS_RESOURCE), but raising is always allowed
    assert Path(f"/proc/{agent.proc.pid}/oom_score_adj").read_text().strip() == "100"
    assert agent.stop() == 0


def syslog_report(pid: int, second: int) -> str:
    """A small but complete kern.log OOM report for `pid`, distinct by its stamps."""
    up = 5000 + second
    head = f"Oct 12 19:{second // 60:02d}:{second % 60:02d} node1 kernel: [{up}.0000"
    lines = [
        "01] app invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        "02] memory: usage 1024kB, limit 1024kB, failcnt 3",
        "03] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
        f"oom_memcg=/svc,task_memcg=/svc,task=app,pid={pid},uid=0",
        f"04] Memory cgroup out of memory: Killed process {pid} (app) total-vm:9000kB, "
        "anon-rss:800kB, file-rss:100kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0",
    ]
    return "".join(f"{head}{line}\n" for line in lines)


def test_file_source_survives_rotation(
    agents: Callable[..., AgentProcess], hook: Recorder, tmp_path: Path
) -> None:
    """kern.log rotated by rename and by copytruncate: every kill once, none twice."""
    logdir = tmp_path / "log"
    logdir.mkdir()
    log = logdir / "kern.log"
    log.write_text(syslog_report(101, 1))
    agent = agents(
        OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook",
        OOMWATCH_SOURCE="file",
        OOMWATCH_LOG_FILE=str(log),
        OOMWATCH_FIRST_START="all",
        # the four kills share a key: a short group interval sends repeats in follow-ups
        OOMWATCH_GROUP_INTERVAL_S="0.5",
    ).start()
    assert hook.wait_for(kill_of(101))
    os.rename(log, logdir / "kern.log.1")  # rotation by rename ...
    with (logdir / "kern.log.1").open("a") as old:  # ... a last write to the old file ...
        old.write(syslog_report(102, 2))
    log.write_text(syslog_report(103, 3))  # ... and the new file
    assert hook.wait_for(kill_of(102))
    assert hook.wait_for(kill_of(103))
    (logdir / "kern.log.2").write_bytes(log.read_bytes())  # copytruncate
    with log.open("r+") as f:
        f.truncate(0)
    with log.open("a") as f:
        f.write(syslog_report(104, 4))
    assert hook.wait_for(kill_of(104))
    agent.settled()
    for pid in (101, 102, 103, 104):
        assert len(hook.wait_for(kill_of(pid), timeout_s=0)) == 1, pid


def test_journald_source(
    agents: Callable[..., AgentProcess],
    hook: Recorder,
    journald: None,  # noqa: ARG001 - a fixture that starts journald
) -> None:
    """With OOMWATCH_SOURCE=journald, the kill comes through journalctl -f with its host."""
    agents(OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook", OOMWATCH_SOURCE="journald").start()
    pid = oom_kill("oomwatch-jd")
    (got,) = hook.wait_for(kill_of(pid))
    inc = got.json()["incident"]
    assert inc["victim"]["comm"] == "oomwatch-jd"
    assert inc["log_host"] is not None
    assert inc["time"] is not None


def test_journald_source_reads_what_came_while_stopped(
    agents: Callable[..., AgentProcess],
    hook: Recorder,
    journald: None,  # noqa: ARG001 - a fixture that starts journald
) -> None:
    """A restart resumes after the saved cursor with every record, not journalctl's last 10."""
    agent = agents(OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook", OOMWATCH_SOURCE="journald").start()
    first = oom_kill("oomwatch-jr1")
    assert hook.wait_for(kill_of(first))
    agent.settled()
    assert agent.stop() == 0
    off = oom_kill("oomwatch-jr2")  # its report is some 70 records
    agent.start()
    assert hook.wait_for(kill_of(off))
    agent.settled()
    for pid in (first, off):
        assert len(hook.wait_for(kill_of(pid), timeout_s=0)) == 1, pid


def test_drill_end_to_end(agents: Callable[..., AgentProcess], tmp_path: Path) -> None:
    """`oomwatch drill` kills a process for real and finds the running agent's incident."""
    import subprocess
    import sys

    import httpx

    jsonl = tmp_path / "incidents.jsonl"
    agent = agents(OOMWATCH_CONSOLE="false", OOMWATCH_JSONL_PATH=str(jsonl)).start()
    assert httpx.get(f"{agent.url}/-/healthy").status_code == 200
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "drill", "--agent", agent.url],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: oomwatch-drill (pid" in done.stdout
    assert "latency from the kernel's kill record to the stored incident" in done.stdout
    assert re.search(r"^  jsonl: sent in \d+ ms$", done.stdout, re.M), done.stdout
    assert '"drill": true' in jsonl.read_text()
    metrics = agent.metrics()
    for name in (
        "oomwatch_kills_total",
        "oomwatch_incidents_total",
        "oomwatch_log_gaps_total",
        "oomwatch_log_records_lost_total",
        "oomwatch_source_up",
        "oomwatch_sample_duration_seconds",
        "oomwatch_queue_depth",
    ):
        assert name in metrics
    agent.stop()
    down = subprocess.run(
        [sys.executable, "-m", "oomwatch", "drill", "--agent", agent.url],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert down.returncode == 1
    assert "no ready agent at" in down.stderr


def slack_like(r: Received) -> tuple[int, dict[str, str], bytes]:
    """Answers like Slack's Web API: every message gets a new ts."""
    if r.path.endswith("/chat.postMessage"):
        return (
            200,
            {},
            json.dumps({"ok": True, "channel": "C1", "ts": f"{time.time():.6f}"}).encode(),
        )
    return 200, {}, b'{"ok": true}'


def test_storm_to_slack_is_one_message_a_thread_and_no_mention(
    agents: Callable[..., AgentProcess],
) -> None:
    """Real kills of a process named <!channel>: one escaped message, repeats in its thread."""
    slack = Recorder(responder=slack_like).start()
    try:
        agent = agents(
            OOMWATCH_SLACK_BOT_TOKEN="xoxb-test",
            OOMWATCH_SLACK_CHANNEL="#oom",
            OOMWATCH_SLACK_API_URL=f"{slack.url}/api/",
            OOMWATCH_GROUP_INTERVAL_S="3",
        ).start()
        name = f"oomwatch-test-{uuid.uuid4().hex[:8]}"
        pids = []
        with memory_cgroup(name, 32 * MIB) as cg:
            for _ in range(4):
                with start_hog(cg, comm="<!channel>") as hog:
                    hog.go()
                    assert hog.wait() == -9
                    pids.append(hog.pid)
        posts = slack.wait_for(
            lambda r: r.path.endswith("/chat.postMessage"), count=2, timeout_s=20
        )
        first, follow = (r.json() for r in posts[:2])
        assert "thread_ts" not in first
        assert "<!channel>" not in json.dumps(first)
        assert "&lt;!channel&gt;" in first["text"]
        assert follow["thread_ts"]  # a reply in the first message's thread
        text = json.dumps(follow)
        assert "3 more OOM kills of &lt;!channel&gt;" in text
        for pid in pids[1:]:
            assert str(pid) in text
        assert slack.wait_for(lambda r: r.path.endswith("/chat.update"))
        agent.settled()
        assert len([r for r in slack.received if r.path.endswith("/chat.postMessage")]) == 2
    finally:
        slack.stop()


def test_kill9_mid_delivery_is_delivered_again_with_the_same_key(
    agents: Callable[..., AgentProcess],
) -> None:
    """A kill -9 while the webhook answers: after a restart, sent again with the same key.

    Delivery is at least once and never lost; the Idempotency-Key lets the receiver
    drop the repeat.
    """
    slow = {"delay": 3.0}

    def answer(_r: Received) -> tuple[int, dict[str, str], bytes]:
        time.sleep(slow["delay"])
        return 200, {}, b"ok"

    hook = Recorder(responder=answer).start()
    try:
        env = {"OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook"}
        first = agents(**env).start()
        pid = oom_kill("oomwatch-mid")
        assert hook.wait_for(kill_of(pid), timeout_s=10)  # arrived, answer still pending
        first.kill9()
        slow["delay"] = 0.0
        agents(**env).start()
        got = hook.wait_for(kill_of(pid), count=2, timeout_s=20)
        assert len(got) == 2
        assert len({r.headers["Idempotency-Key"] for r in got}) == 1
    finally:
        hook.stop()


def test_kill9_after_slack_took_the_post_does_not_repeat_it(
    agents: Callable[..., AgentProcess],
) -> None:
    """Killed while Slack's answer is on its way: the restart finds the message, posts nothing."""
    api = SlackLike()
    api.post_delay = 3.0
    slack = Recorder(responder=api).start()
    try:
        env = {
            "OOMWATCH_SLACK_BOT_TOKEN": "xoxb-test",
            "OOMWATCH_SLACK_CHANNEL": SlackLike.CHANNEL,
            "OOMWATCH_SLACK_API_URL": f"{slack.url}/api/",
        }
        first = agents(**env).start()
        pid = oom_kill("oomwatch-slack9")

        def ours(m: dict[str, Any]) -> bool:
            return f"(pid {pid})" in json.dumps(m["body"].get("blocks"))

        (posted,) = api.wait(ours, timeout_s=10)  # in the channel, the answer still pending
        first.kill9()
        api.post_delay = 0.0
        second = agents(**env).start()
        second.wait_log("arrived before the restart; not sent again")
        second.settled()
        key = posted["metadata"]["event_payload"]["delivery_key"]
        assert api.keys().count(key) == 1
        assert len(api.wait(ours, timeout_s=0)) == 1
        assert api.history_calls >= 1
    finally:
        slack.stop()


def test_silence_added_while_running(
    agents: Callable[..., AgentProcess], hook: Recorder, tmp_path: Path
) -> None:
    """A silence added while the agent runs is picked up on the file's change.

    The silenced kill is stored and counted, not sent; another kill still goes out.
    """
    import subprocess
    import sys

    import httpx

    path = tmp_path / "silences.json"
    agent = agents(
        OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook", OOMWATCH_SILENCES_PATH=str(path)
    ).start()
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "silence", "add", "comm=oomwatch-quiet", "--for", "10m"],
        env={"OOMWATCH_SILENCES_PATH": str(path)},
        check=True,
        capture_output=True,
    )
    assert done.returncode == 0
    agent.wait_log("silences reloaded: 1 active")
    quiet = oom_kill("oomwatch-quiet")
    loud = oom_kill("oomwatch-loud")
    assert hook.wait_for(kill_of(loud))
    assert not hook.wait_for(kill_of(quiet), timeout_s=1.0)
    stored = httpx.get(f"{agent.url}/api/v1/incidents").json()
    assert any(i["incident"]["victim"]["pid"] == quiet for i in stored if i["kind"] == "oom_kill")
    assert 'oomwatch_incidents_silenced_total{kind="oom_kill"} 1.0' in agent.metrics()


def test_kill_in_a_kubelet_cgroup_names_the_pod(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """A real kill in a cgroup laid out like the kubelet's is attributed to its pod.

    The pod comes from a Kubernetes-API-like server watched for node-1's pods.
    """
    from tests.k8s_api import KubeAPI, pod

    uid = str(uuid.uuid4())
    cid = uuid.uuid4().hex * 2
    api = KubeAPI()
    api.events = [("ADDED", pod("api-7f9c5d-x2k", uid, cid))]
    try:
        agent = agents(
            OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook",
            OOMWATCH_HOSTNAME="node-1",
            OOMWATCH_KUBERNETES_API_URL=api.url,
        ).start()
        agent.wait_metric("oomwatch_pods_known", at_least=1)
        pid = oom_kill("api-server", inner=f"kubepods/burstable/pod{uid}/{cid}")
        (got,) = hook.wait_for(kill_of(pid))
    finally:
        api.stop()
    inc = got.json()["incident"]
    assert inc["container"]["pod_uid"] == uid
    assert inc["container"]["qos_class"] == "burstable"
    k8s = inc["kubernetes"]
    assert (k8s["namespace"], k8s["pod"], k8s["container"]) == ("shop", "api-7f9c5d-x2k", "api")
    assert k8s["owner"] == "Deployment/api"
    assert inc["where"] == "container api of pod shop/api-7f9c5d-x2k (Deployment api)"
    assert got.json()["title"].endswith(
        "container api of pod shop/api-7f9c5d-x2k (Deployment api)."
    )


def swap_config(root: Path, text: str, version: str) -> None:
    """Update a config directory the way Kubernetes updates a mounted ConfigMap."""
    data = root / f"..{version}"
    data.mkdir()
    (data / "config.yaml").write_text(text)
    tmp = root / "..data_tmp"
    tmp.symlink_to(data.name)
    tmp.rename(root / "..data")  # atomic, like the kubelet
    link = root / "config.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/config.yaml")


def test_config_reloaded_on_change_and_bad_file_rejected(
    agents: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    """A ConfigMap-style swap of the config file switches receivers live.

    A broken new file is rejected and the configuration in force stays.
    """
    first, second = Recorder().start(), Recorder().start()
    root = tmp_path / "config"
    root.mkdir()
    hook = "receivers:\n  - name: hook\n    webhook: {{url: '{}/hook'}}\n"
    try:
        swap_config(root, hook.format(first.url), "v1")
        agent = agents(OOMWATCH_CONFIG=str(root / "config.yaml")).start()
        one = oom_kill("oomwatch-cfg-1")
        assert first.wait_for(kill_of(one))
        swap_config(root, hook.format(second.url), "v2")
        agent.wait_log("configuration reloaded")
        two = oom_kill("oomwatch-cfg-2")
        assert second.wait_for(kill_of(two))
        assert not first.wait_for(kill_of(two), timeout_s=0.5)
        swap_config(root, "receivers: [\n", "v3")
        agent.wait_log("the configuration in force stays")
        three = oom_kill("oomwatch-cfg-3")
        assert second.wait_for(kill_of(three))
        assert "the configuration in force stays" in agent.log.read_text()
    finally:
        first.stop()
        second.stop()


def test_the_agent_never_holds_pydantic(
    agents: Callable[..., AgentProcess], hook: Recorder, tmp_path: Path
) -> None:
    """Settings and receivers are checked in a child process, at start and at each reload.

    pydantic and pydantic-settings (11 MB) never enter the agent: its memory maps
    hold no pydantic_core, before and after a reload of the receivers file.
    """
    root = tmp_path / "config"
    root.mkdir()
    text = "receivers:\n  - name: {}\n    webhook: {{url: '" + hook.url + "/hook'}}\n"
    swap_config(root, text.format("first"), "v1")
    agent = agents(OOMWATCH_CONFIG=str(root / "config.yaml")).start()
    assert agent.proc is not None
    maps = Path(f"/proc/{agent.proc.pid}/maps")
    assert "pydantic" not in maps.read_text()
    swap_config(root, text.format("second"), "v2")
    agent.wait_log("configuration reloaded: receivers second")
    swap_config(root, text.format("third") + "  - bad: [\n", "v3")
    agent.wait_log("config " + str(root / "config.yaml") + " is not valid YAML")
    assert "pydantic" not in maps.read_text()
    assert "third" not in agent.log.read_text()


def test_sighup_reloads_silences(
    agents: Callable[..., AgentProcess], hook: Recorder, tmp_path: Path
) -> None:
    """SIGHUP reloads the silences even when the file's stamp did not change."""
    import signal as sig

    from oomwatch.delivery import silences

    path = tmp_path / "silences.json"
    silences.add(path, ["comm=oomwatch-hupa"], 600, "")
    agent = agents(
        OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook", OOMWATCH_SILENCES_PATH=str(path)
    ).start()
    st = path.stat()
    text = path.read_text().replace("oomwatch-hupa", "oomwatch-hupb")
    with path.open("r+") as f:  # same inode, same size, same mtime: only SIGHUP can tell
        f.write(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert agent.proc is not None
    loads = agent.log.read_text().count("silences reloaded")
    agent.proc.send_signal(sig.SIGHUP)
    agent.wait_log("silences reloaded", count=loads + 1)
    quiet = oom_kill("oomwatch-hupb")
    loud = oom_kill("oomwatch-hupa")
    assert hook.wait_for(kill_of(loud))
    assert not hook.wait_for(kill_of(quiet), timeout_s=1.0)


def test_drill_pages_no_one_and_reports_each_receiver(
    agents: Callable[..., AgentProcess], hook: Recorder, tmp_path: Path
) -> None:
    """A drill is marked and info; PagerDuty gets nothing; each receiver's outcome is printed."""
    import subprocess
    import sys

    from tests.agentproc import free_ports

    pd = Recorder(responses=[]).start()
    config = tmp_path / "receivers.yaml"
    agent = agents(OOMWATCH_CONFIG=str(config))
    down = next(p for p in free_ports(2) if p != agent.port)  # not the agent's own port
    config.write_text(
        "receivers:\n"
        f"  - name: up\n    webhook: {{url: '{hook.url}/hook'}}\n"
        f"  - name: down\n    webhook: {{url: 'http://127.0.0.1:{down}/hook'}}\n"
        f"  - name: pd\n    pagerduty: {{routing_key: R0123456789abcdef0123456789abcdef, "
        f"url: '{pd.url}/v2/enqueue'}}\n"
    )
    try:
        agent.start()
        done = subprocess.run(
            [sys.executable, "-m", "oomwatch", "drill", "--agent", agent.url, "--timeout", "5"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        pd.stop()
    out = done.stdout
    assert done.returncode == 1, out + done.stderr  # the receiver that is down
    assert re.search(r"^  up: sent in \d+ ms$", out, re.M), out
    assert re.search(
        rf"^  down: NOT YET SENT after \d+ attempt\(s\): .*connection refused by 127.0.0.1:{down}$",
        out,
        re.M,
    ), out
    assert "  pd:" not in out
    assert "skip drills: --page" in out
    assert pd.received == []
    (got,) = hook.wait_for(lambda r: r.json().get("drill") is True, timeout_s=1)
    assert got.json()["severity"] == "info"
