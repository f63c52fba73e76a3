"""Every payload within its receiver's documented size limit, whatever the processes chose."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from oomwatch.enrich.host import this_node
from oomwatch.incidents.bounds import bounded
from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.kernel.scan import LogScanner
from oomwatch.metrics import Metrics
from oomwatch.model import Incident, ProcessDetails, TopProcess
from oomwatch.notify.alertmanager import AlertmanagerNotifier
from oomwatch.notify.email import message
from oomwatch.notify.jsonl import JsonlNotifier
from oomwatch.notify.k8s_events import event as k8s_event
from oomwatch.notify.opsgenie import OpsgenieNotifier
from oomwatch.notify.pagerduty import PagerDutyNotifier
from oomwatch.notify.slack_blocks import blocks
from oomwatch.notify.webhook import WebhookNotifier
from oomwatch.render.escape import TRUNCATED
from oomwatch.render.fit import fit, size
from oomwatch.sampling.sampler import PidCache
from oomwatch.server import HealthState, make_app
from oomwatch.store import Store
from tests.notify.test_notifiers import send, server
from tests.servers import Recorder

pytestmark = pytest.mark.fault

__all__ = ["server"]  # the fixture
MB = 1 << 20
ROWS = 30_000


def hostile_report() -> str:
    """A kill whose name and cgroup are 1 MB each, in a report of 30,000 task rows."""
    comm, cg = "n" * MB, "/" + "g" * MB
    rows = "".join(
        f"<6>[  100.{i:06d}] [{1000 + i:7d}]     0 {1000 + i:7d}    25000    {i % 5000:5d}"
        f"   180224        0             0 task{i}\n"
        for i in range(ROWS)
    )
    return (
        f"<4>[  100.000000] {comm} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0,"
        " oom_score_adj=0\n"
        "<6>[  100.000000] memory: usage 49152kB, limit 49152kB, failcnt 12\n"
        "<6>[  100.000000] Tasks state (memory values in pages):\n"
        "<6>[  100.000000] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents"
        " oom_score_adj name\n"
        f"{rows}"
        "<6>[  100.900000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
        f"mems_allowed=0,oom_memcg={cg},task_memcg={cg},task={comm},pid=1042,uid=0\n"
        f"<3>[  100.900001] Memory cgroup out of memory: Killed process 1042 ({comm})"
        " total-vm:60000kB, anon-rss:47000kB, file-rss:1200kB, shmem-rss:0kB, UID:0"
        " pgtables:200kB oom_score_adj:0\n"
    )


@pytest.fixture(scope="module")
def incident() -> Incident:
    """The hostile kill as the agent's builder makes it, with 4 KiB command lines around it."""
    (kill,) = LogScanner().scan_lines(hostile_report().splitlines())
    assert len(kill.tasks) == ROWS
    assert len(kill.victim.comm or "") == MB
    inc = IncidentBuilder(this_node("boot", "node-1"), PidCache()).kill(kill)
    k = inc.kill
    assert k is not None
    cmd = ("/bin/x", "A" * 4096)  # the most the pid cache keeps of one
    top = tuple(TopProcess(i, "p" * 15, 1, "u" * 32, cmd, "/" + "c" * 4095) for i in range(5))
    return replace(inc, facts=replace(k, top_now=top, process=ProcessDetails(cmdline=cmd)))


def test_the_incident_keeps_bounded_kernel_text(incident: Incident) -> None:
    """4,096 characters of a path, 64 of a name, the 100 largest task rows with the victim's."""
    k = incident.kill
    assert k is not None
    assert len(k.kill.victim.comm or "") == 64
    assert len(k.kill.task_memcg or "") == len(k.kill.oom_memcg or "") == 4096
    assert len(k.kill.tasks) == 100
    assert k.kill.tasks_cut == ROWS - 100
    assert 1042 in {t.pid for t in k.kill.tasks}  # the victim's row
    assert min(t.rss_pages or 0 for t in k.kill.tasks if t.pid != 1042) >= 4900
    assert len(incident.title) < 5000
    assert size(incident.to_json()) < 128 * 1024


def test_a_kill_within_the_bounds_is_kept_as_it_is() -> None:
    """The usual kill is not copied; one long name alone is cut, and the rest stays the same."""
    report = (
        hostile_report().replace("n" * MB, "worker").replace("g" * MB, "kubepods/pod1").split("\n")
    )
    (kill,) = LogScanner().scan_lines(report[:5] + report[-3:])
    assert len(kill.tasks) == 1
    assert kill.victim.comm == "worker"
    assert bounded(kill) is kill
    cut = bounded(replace(kill, victim=replace(kill.victim, comm="y" * 100)))
    assert len(cut.victim.comm or "") == 64
    assert (cut.victim.comm or "").endswith(TRUNCATED)
    assert cut.tasks == kill.tasks
    assert cut.task_memcg == "/kubepods/pod1"


def test_http_receivers_get_bodies_within_their_limits(
    incident: Incident, server: Recorder
) -> None:
    """Webhook 256 KiB, PagerDuty 512 KB, Opsgenie's field limits, Alertmanager label bounds."""
    send(WebhookNotifier(f"{server.url}/hook", max_bytes=64 * 1024), incident)
    send(PagerDutyNotifier("pd", "RK", f"{server.url}/v2/enqueue"), incident)
    send(OpsgenieNotifier("og", "KEY", server.url), incident)
    send(AlertmanagerNotifier("am", server.url), incident)
    by = {r.path: r.body for r in server.received}
    hook = json.loads(by["/hook"])
    assert len(by["/hook"]) <= 64 * 1024
    assert {k: hook[k] for k in ("id", "key", "status")} == {
        "id": incident.id,
        "key": incident.key,
        "status": "firing",
    }
    assert hook["truncated"]  # the incident's largest parts, never the envelope
    assert all(p.startswith("incident.") for p in hook["truncated"])
    assert len(by["/v2/enqueue"]) <= 512_000
    assert json.loads(by["/v2/enqueue"])["dedup_key"] == incident.key
    og = json.loads(by["/v2/alerts"])
    assert len(og["message"]) <= 130
    assert len(og["description"]) <= 15_000
    assert sum(len(k) + len(v) for k, v in og["details"].items()) <= 8000
    assert len(og["entity"]) <= 512
    assert len(og["alias"]) <= 512
    (alert,) = json.loads(by["/api/v2/alerts"])
    assert all(len(v) <= 1024 for v in alert["labels"].values())
    assert len(by["/api/v2/alerts"]) < 16 * 1024


def test_a_template_that_repeats_the_payload_still_fits(
    incident: Incident, server: Recorder
) -> None:
    """A template printing the payload three times gets a smaller payload, not a refusal."""
    template = '{"a": {{ payload|tojson }}, "b": {{ payload|tojson }}, "c": {{ payload|tojson }}}'
    send(WebhookNotifier(server.url, template=template, max_bytes=32 * 1024), incident)
    (got,) = server.received
    assert len(got.body) <= 32 * 1024
    assert json.loads(got.body)["a"]["key"] == incident.key


def test_local_sinks_and_kubernetes_are_bounded(incident: Incident, tmp_path: Path) -> None:
    """The JSONL line 256 KiB; Slack within Block Kit; an Event's message 1,024; email small."""
    path = tmp_path / "out.jsonl"
    send(JsonlNotifier(path), incident)
    line = path.read_bytes()
    assert len(line) <= 256 * 1024
    assert json.loads(line)["key"] == incident.key
    text, bl = blocks(incident)
    assert len(text) <= 3000
    assert len(bl) <= 50
    assert size(bl) < 64 * 1024
    import datetime as dt

    found = k8s_event(incident, "node-1", dt.datetime.now(dt.UTC), "d")
    assert found is not None
    assert len(found[1]["message"]) <= 1024
    mail = message(incident, "a@example.com", ["b@example.com"], "d").as_bytes()
    assert len(mail) < 128 * 1024


def test_fit_cuts_the_largest_parts_and_keeps_the_envelope() -> None:
    """Cutting the largest string or list until the whole fits; kept names stay whole."""
    payload = {
        "key": "k" * 600,
        "big": ["x" * 1000] * 1000,
        "deep": {"a": "y" * 300_000, "b": [1, 2]},
    }
    out = fit(payload, 20_000, keep=frozenset({"key"}))
    assert size(out) <= 20_000
    assert out["key"] == "k" * 600
    assert out["deep"]["a"].endswith(TRUNCATED)
    assert out["deep"]["b"] == [1, 2]
    assert set(out["truncated"]) == {"big", "deep.a"}
    assert fit({"a": 1}, 10**6) == {"a": 1}
    # nothing halvable is left (one huge key): only the kept names go out
    assert fit({"key": "k", "z" * 50_000: 1}, 4096, keep=frozenset({"key"})) == {
        "key": "k",
        "truncated": ["*"],
    }


def test_the_api_answers_pages_of_bounded_incidents(incident: Incident, tmp_path: Path) -> None:
    """`limit` incidents (50 unless given, at most 200), each at most 256 KiB; `before` pages."""
    store = Store(tmp_path / "db")
    huge = replace(incident, title="T" * (2 * MB))
    store.record(
        [replace(huge, id=f"kill:{i}", detected_at=1000.0 + i) for i in range(60)], ["console"]
    )
    store.close()
    app = make_app(Metrics().registry, HealthState(60), tmp_path / "db")
    from wsgiref.simple_server import make_server

    srv = make_server("127.0.0.1", 0, app)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}/api/v1/incidents"
    try:
        page = httpx.get(base, timeout=30).json()
        assert [p["id"] for p in page] == [f"kill:{i}" for i in range(59, 9, -1)]
        assert all(size(p) <= 256 * 1024 and p["truncated"] for p in page)
        older = httpx.get(base, params={"before": "1010", "limit": "200"}, timeout=30).json()
        assert [p["id"] for p in older] == [f"kill:{i}" for i in range(9, -1, -1)]
        assert httpx.get(base, params={"limit": "201"}, timeout=30).status_code == 400
    finally:
        srv.shutdown()
        srv.server_close()
