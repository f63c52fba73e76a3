"""Each notifier against a real server on 127.0.0.1 that answers like the service does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from oomwatch.errors import NotifyError
from oomwatch.model import Incident
from oomwatch.model.parts import PodRef
from oomwatch.notify import Notifier
from oomwatch.notify.alertmanager import AlertmanagerNotifier
from oomwatch.notify.opsgenie import OpsgenieNotifier
from oomwatch.notify.pagerduty import PagerDutyNotifier
from oomwatch.notify.sample import sample_incident
from oomwatch.notify.slack import SlackBotNotifier, SlackWebhookNotifier, _MemoryThreads
from oomwatch.notify.webhook import WebhookNotifier
from oomwatch.testing import make_incident, with_victim
from tests.servers import Received, Recorder

TOKEN = "xoxb-1234-SECRETTOKEN"


@pytest.fixture
def server() -> Iterator[Recorder]:
    """A recording HTTP server on 127.0.0.1."""
    r = Recorder().start()
    yield r
    r.stop()


def send(n: Notifier, inc: Incident) -> None:
    """One delivery attempt, then close."""

    async def go() -> None:
        try:
            await n.send(inc, f"{inc.id}/{n.name}")
        finally:
            await n.aclose()

    asyncio.run(go())


def hostile() -> Incident:
    """The sample incident with a process name and command line that try to ping everyone."""
    inc = sample_incident("node-1")
    cmdline = ("/bin/x", "<https://evil.example|click here>", "&amp;", "x" * 5000)
    inc = with_victim(inc, "<!channel>", cmdline)
    return replace(inc, title=inc.title.replace("stress-ng-vm", "<!channel>"))


def slack_api(r: Received) -> tuple[int, dict[str, str], bytes]:
    """Answers like Slack's Web API."""
    if r.path.endswith("/chat.postMessage"):
        return (
            200,
            {},
            json.dumps({"ok": True, "channel": "C0123", "ts": "1700000000.000100"}).encode(),
        )
    if r.path.endswith("/chat.update"):
        return 200, {}, b'{"ok": true}'
    return 404, {}, b'{"ok": false, "error": "unknown_method"}'


def test_slack_bot_posts_escaped_then_threads_repeats(server: Recorder) -> None:
    """First message escaped and within limits; a repeat goes in its thread and updates it."""
    server.responder = slack_api
    threads = _MemoryThreads()
    inc = hostile()
    send(
        SlackBotNotifier("slack", TOKEN, "#oom", api_url=f"{server.url}/api/", threads=threads), inc
    )
    (first,) = server.received
    assert first.path == "/api/chat.postMessage"
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(first.body)
    raw = json.dumps(body)
    assert "<!channel>" not in raw
    assert "&lt;!channel&gt;" in body["text"]
    assert "<https://evil.example" not in raw
    assert "&amp;amp;" in raw
    assert len(body["text"]) <= 3000
    for block in body["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for f in block.get("fields", []):
            assert len(f["text"]) <= 2000
    assert any("[truncated]" in f["text"] for b in body["blocks"] for f in b.get("fields", []))
    send(
        SlackBotNotifier("slack", TOKEN, "#oom", api_url=f"{server.url}/api/", threads=threads), inc
    )
    reply, update = server.received[1:]
    assert json.loads(reply.body)["thread_ts"] == "1700000000.000100"
    assert update.path == "/api/chat.update"
    up = json.loads(update.body)
    assert up["ts"] == "1700000000.000100"
    assert "2 OOM kills of 2 processes so far" in json.dumps(up["blocks"])


@pytest.mark.parametrize(
    ("status", "headers", "reply", "retryable", "after"),
    [
        (200, {}, b'{"ok": false, "error": "channel_not_found"}', False, None),
        (429, {"Retry-After": "7"}, b'{"ok": false, "error": "ratelimited"}', True, 7.0),
        (500, {}, b'{"ok": false, "error": "internal_error"}', True, None),
    ],
)
def test_slack_bot_errors(
    server: Recorder,
    status: int,
    headers: dict[str, str],
    reply: bytes,
    retryable: bool,
    after: float | None,
) -> None:
    """ok:false is permanent, ratelimited waits for Retry-After, 5xx retries; no token shown."""
    server.responses = [(status, headers, reply)]
    with pytest.raises(NotifyError) as e:
        send(
            SlackBotNotifier(
                "slack", TOKEN, "#oom", api_url=f"{server.url}/api/", threads=_MemoryThreads()
            ),
            sample_incident(),
        )
    assert e.value.retryable is retryable
    assert e.value.retry_after == after
    assert TOKEN not in str(e.value)


def test_slack_incoming_webhook(server: Recorder) -> None:
    """An incoming webhook gets text and blocks; 404 is permanent, 429 is retried."""
    url = f"{server.url}/services/T000/B000/SECRETPART"
    send(SlackWebhookNotifier("slack", url), hostile())
    body = json.loads(server.received[0].body)
    assert "&lt;!channel&gt;" in body["text"]
    server.responses = [(404, {}, b"channel_not_found")]
    with pytest.raises(NotifyError) as e:
        send(SlackWebhookNotifier("slack", url), sample_incident())
    assert e.value.retryable is False
    assert "SECRETPART" not in str(e.value)
    server.responses = [(429, {"Retry-After": "3"}, b"rate_limited")]
    with pytest.raises(NotifyError) as e2:
        send(SlackWebhookNotifier("slack", url), sample_incident())
    assert (e2.value.retryable, e2.value.retry_after) == (True, 3.0)


def resolved(inc: Incident) -> Incident:
    """The same incident, resolved."""
    return replace(inc, id=inc.id + ":r", status="resolved")


def test_pagerduty_trigger_and_resolve(server: Recorder) -> None:
    """Events API v2: trigger with dedup_key = key, then resolve; 400 is permanent."""
    server.responder = lambda _r: (202, {}, b'{"status":"success","message":"Event processed"}')
    inc = sample_incident("node-1")
    send(PagerDutyNotifier("pd", "R0UTINGKEY", f"{server.url}/v2/enqueue"), inc)
    send(PagerDutyNotifier("pd", "R0UTINGKEY", f"{server.url}/v2/enqueue"), resolved(inc))
    trig, res = (json.loads(r.body) for r in server.received)
    assert trig["event_action"] == "trigger"
    assert trig["dedup_key"] == inc.key
    assert trig["routing_key"] == "R0UTINGKEY"
    assert trig["payload"]["severity"] == "critical"
    assert trig["payload"]["source"] == "node-1"
    assert len(trig["payload"]["summary"]) <= 1024
    assert res == {"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": inc.key}
    server.responder = None
    server.responses = [(400, {}, b'{"status":"invalid event","errors":["x"]}')]
    with pytest.raises(NotifyError) as e:
        send(PagerDutyNotifier("pd", "R0UTINGKEY", f"{server.url}/v2/enqueue"), inc)
    assert e.value.retryable is False


def test_opsgenie_create_and_close(server: Recorder) -> None:
    """Create with alias = key and a GenieKey header; close by alias on resolve."""
    server.responder = lambda _r: (202, {}, b'{"result":"Request will be processed"}')
    inc = sample_incident()
    send(OpsgenieNotifier("og", "0PSKEY", server.url), inc)
    send(OpsgenieNotifier("og", "0PSKEY", server.url), resolved(inc))
    create, close = server.received
    assert create.path == "/v2/alerts"
    assert create.headers["Authorization"] == "GenieKey 0PSKEY"
    c = json.loads(create.body)
    assert c["alias"] == inc.key
    assert len(c["message"]) <= 130
    assert c["priority"] == "P1"
    assert close.path == f"/v2/alerts/{inc.key}/close?identifierType=alias"


def test_alertmanager_alerts(server: Recorder) -> None:
    """A list of one alert with labels, annotations, startsAt; resolve sets endsAt to now."""
    inc = sample_incident("node-1")
    send(AlertmanagerNotifier("am", server.url), inc)
    send(AlertmanagerNotifier("am", server.url), resolved(inc))
    fire, res = (json.loads(r.body) for r in server.received)
    assert server.received[0].path == "/api/v2/alerts"
    (a,) = fire
    assert a["labels"]["alertname"] == "OOMKill"
    assert a["labels"]["oomwatch_key"] == inc.key
    assert a["labels"]["comm"] == "stress-ng-vm"
    assert a["labels"]["pod_uid"] == "5931aa75-4603-4e65-b552-7c71cf55cfb5"
    assert a["endsAt"] > a["startsAt"]
    assert res[0]["endsAt"] >= a["startsAt"]
    assert "namespace" not in a["labels"]  # no pod known: no workload labels


def test_alertmanager_labels_name_the_workload(server: Recorder) -> None:
    """A pod's kill carries namespace, pod, container, owner_kind and owner, as /metrics does."""
    inc = sample_incident("node-1")
    kill = inc.kill
    assert kill is not None
    pod = PodRef("shop", "api-7f9c-x2", container="api", owner_kind="Deployment", owner_name="api")
    send(AlertmanagerNotifier("am", server.url), replace(inc, facts=replace(kill, pod=pod)))
    ((a,),) = (json.loads(r.body) for r in server.received)
    assert {
        k: a["labels"][k] for k in ("namespace", "pod", "container", "owner_kind", "owner")
    } == {
        "namespace": "shop",
        "pod": "api-7f9c-x2",
        "container": "api",
        "owner_kind": "Deployment",
        "owner": "api",
    }


def test_webhook_signature_headers_and_template(server: Recorder) -> None:
    """The HMAC verifies over timestamp and body; custom headers; a template shapes the body."""
    inc = sample_incident()
    send(WebhookNotifier(f"{server.url}/h", headers={"X-Team": "sre"}, hmac_secret="s3cret"), inc)
    r = server.received[0]
    sig = dict(part.split("=", 1) for part in r.headers["X-Oomwatch-Signature"].split(","))
    want = hmac.new(b"s3cret", sig["t"].encode() + b"." + r.body, hashlib.sha256).hexdigest()
    assert sig["v1"] == want
    assert r.headers["X-Team"] == "sre"
    tpl = '{"text": {{ payload.incident.victim.comm | tojson }}, "key": "{{ payload.key }}"}'
    send(WebhookNotifier(f"{server.url}/h", template=tpl), inc)
    assert json.loads(server.received[1].body) == {"text": "stress-ng-vm", "key": inc.key}
    assert server.received[1].headers["Content-Type"] == "application/json"


def test_webhook_template_is_sandboxed(server: Recorder) -> None:
    """A template cannot reach Python internals."""
    tpl = "{{ payload.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(NotifyError) as e:
        send(WebhookNotifier(f"{server.url}/h", template=tpl), sample_incident())
    assert e.value.retryable is False
    assert server.received == []


def test_no_notifier_leaks_its_secret() -> None:
    """Against a closed port, every notifier's error names no token, key or secret URL part."""
    from tests.agentproc import free_port

    base = f"http://127.0.0.1:{free_port()}"
    cases: list[tuple[Notifier, str]] = [
        (
            SlackBotNotifier("s", TOKEN, "#c", api_url=f"{base}/api/", threads=_MemoryThreads()),
            TOKEN,
        ),
        (SlackWebhookNotifier("s", f"{base}/services/SECRETPART"), "SECRETPART"),
        (WebhookNotifier(f"{base}/hook/SECRETPART"), "SECRETPART"),
        (PagerDutyNotifier("p", "R0UTINGKEY", f"{base}/v2/enqueue"), "R0UTINGKEY"),
        (OpsgenieNotifier("o", "0PSKEY", base), "0PSKEY"),
        (AlertmanagerNotifier("a", f"{base}/am/SECRETPART"), "SECRETPART"),
    ]
    for notifier, secret_text in cases:
        with pytest.raises(NotifyError) as e:
            send(notifier, sample_incident())
        assert e.value.retryable is True
        assert secret_text not in str(e.value), notifier.name


def test_alertmanager_firing_condition_outlives_the_next_resend(server: Recorder) -> None:
    """A firing condition's endsAt lies past the next re-send (repeat interval + margin)."""
    inc = make_incident(1, kind="memory_low", severity="warning", cgroup=None, detected_at=0.0)
    send(AlertmanagerNotifier("am", server.url, repeat_interval=600), inc)
    (a,) = json.loads(server.received[0].body)
    import datetime as dt

    ends = dt.datetime.fromisoformat(a["endsAt"])
    assert ends - dt.datetime.now(dt.UTC) > dt.timedelta(seconds=600)
    assert a["labels"]["alertname"] == "MemoryLow"
