"""No secret reaches the agent's log or its database, even when a receiver echoes them back.

Root only (a real OOM kill in a 32 MiB memory cgroup, /dev/kmsg).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.agentproc import AgentProcess, free_port
from tests.conftest import real_kernel_reason
from tests.servers import Received, Recorder
from tests.test_agent import agents, oom_kill

pytestmark = [
    pytest.mark.skipif(real_kernel_reason() is not None, reason=real_kernel_reason() or ""),
    pytest.mark.fault,
]
__all__ = ["agents"]  # the fixture
SECRETS = ("pw-secret-42", "SECRETPATH", "qtok-777", "hdr-secret-99", "hmac-secret-31")


def test_an_echoing_receiver_leaks_nothing(
    agents: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    """A 400 whose body repeats the URL and the Authorization header: the log shows neither."""

    def echo(req: Received) -> tuple[int, dict[str, str], bytes]:
        told = f"bad request to {req.path} with {req.headers.get('Authorization')}"
        return 400, {"Content-Type": "text/plain"}, told.encode()

    hook = Recorder(responder=echo).start()
    port = hook.url.rsplit(":", 1)[1]
    config = tmp_path / "receivers.yaml"
    config.write_text(
        "receivers:\n  - name: echo\n    webhook:\n"
        f"      url: 'http://user:pw-secret-42@127.0.0.1:{port}/hook/SECRETPATH?token=qtok-777'\n"
        "      headers: {Authorization: 'Bearer hdr-secret-99'}\n"
        "      hmac_secret: hmac-secret-31\n"
    )
    try:
        agent = agents(OOMWATCH_CONFIG=str(config)).start()
        pid = oom_kill("oomwatch-leak")
        agent.wait_log("failed for good")
        assert any(str(pid) in r.body.decode() for r in hook.received), "the kill was sent"
        assert "SECRETPATH" in hook.received[0].path, "the receiver did echo the secrets"
        assert agent.stop() == 0
    finally:
        hook.stop()
    log = agent.log.read_bytes()
    assert b"HTTP 400" in log
    stored = b"".join(p.read_bytes() for p in agent.state_dir.glob("oomwatch.db*"))
    for secret in SECRETS:
        assert secret.encode() not in log, secret
        assert secret.encode() not in stored, secret


EVERY = {
    "slack token": "xoxb-1111-2222-SLACKSECRET",
    "slack hook": "SLACKHOOKSECRET",
    "webhook password": "pw-secret-42",
    "webhook path": "SECRETPATH",
    "webhook token": "qtok-777",
    "hmac": "hmac-secret-31",
    "pagerduty": "PDROUTINGSECRET",
    "opsgenie": "OPSGENIESECRET",
    "smtp": "SMTPPASSSECRET",
    "alertmanager": "AMPASSSECRET",
}


def test_every_receiver_kind_leaks_nothing_at_debug(
    agents: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    """Every kind of secret, echoed back by every receiver, at DEBUG: none in any output."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def echo(req: Received) -> tuple[int, dict[str, str], bytes]:
        told = f"{req.path} {req.headers.get('Authorization')} {req.body[:4000].decode()}"
        if "/api/chat." in req.path:  # Slack's Web API: 200 with ok false
            return 200, {}, json.dumps({"ok": False, "error": f"invalid_auth {told}"}).encode()
        return 400, {"Content-Type": "text/plain"}, told.encode()

    def refuse(*_args: object) -> AuthResult:
        return AuthResult(success=False, message="535 wrong: SMTPPASSSECRET")

    hook = Recorder(responder=echo).start()
    smtp = Controller(
        object(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=refuse,
        auth_require_tls=False,
    )
    smtp.start()
    port = hook.url.rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "receivers.yaml"
    config.write_text(
        "receivers:\n"
        f"  - name: bot\n    slack: {{token: {EVERY['slack token']}, channel: C0123,"
        f" api_url: '{base}/api/'}}\n"
        f"  - name: incoming\n    slack: {{webhook_url: '{base}/services/T0/B0/SLACKHOOKSECRET'}}\n"
        "  - name: hook\n    webhook:\n"
        f"      url: 'http://user:pw-secret-42@127.0.0.1:{port}/hook/SECRETPATH?token=qtok-777'\n"
        "      hmac_secret: hmac-secret-31\n"
        f"  - name: pd\n    pagerduty: {{routing_key: PDROUTINGSECRET, url: '{base}/v2/enqueue'}}\n"
        f"  - name: og\n    opsgenie: {{api_key: OPSGENIESECRET, url: '{base}'}}\n"
        f"  - name: am\n    alertmanager: {{url: 'http://am:AMPASSSECRET@127.0.0.1:{port}/'}}\n"
        f"  - name: mail\n    email: {{smtp_host: 127.0.0.1, smtp_port: {smtp.port},"
        " security: none, username: oomwatch, password: SMTPPASSSECRET,"
        " from: a@example.com, to: [b@example.com]}\n"
    )
    try:
        agent = agents(OOMWATCH_CONFIG=str(config), OOMWATCH_LOG_LEVEL="debug").start()
        pid = oom_kill("oomwatch-leak-all")
        # every receiver's row is stored with the incident: once one has it, wait for all
        assert hook.wait_for(lambda r: str(pid) in r.body.decode())
        agent.settled(timeout_s=60)
        got = {r.path.split("?")[0] for r in hook.received if str(pid) in r.body.decode()}
        assert {"/api/chat.postMessage", "/v2/enqueue", "/v2/alerts", "/api/v2/alerts"} <= got
        assert any(p.startswith("/hook/SECRETPATH") for p in got)
        assert "/services/T0/B0/SLACKHOOKSECRET" in got
        metrics = httpx.get(f"{agent.url}/metrics", timeout=5).text
        api = httpx.get(f"{agent.url}/api/v1/incidents", timeout=5).text
        assert str(pid) in api
        (incident,) = [i["id"] for i in json.loads(api) if i["kind"] == "oom_kill"]
        deliveries = httpx.get(
            f"{agent.url}/api/v1/deliveries", params={"incident": incident}, timeout=5
        ).text
        assert "bot" in deliveries  # every receiver's outcome, with its (masked) error
        assert agent.stop() == 0
    finally:
        hook.stop()
        smtp.stop()
    checked = subprocess.run(
        [sys.executable, "-m", "oomwatch", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    log = agent.log.read_text()
    assert "DEBUG" in log  # the level took effect: the libraries' lines are there too
    stored = b"".join(p.read_bytes() for p in agent.state_dir.glob("oomwatch.db*"))
    outputs = {
        "log": log,
        "metrics": metrics,
        "api": api,
        "deliveries": deliveries,
        "check-config": checked.stdout + checked.stderr,
        "database": stored.decode(errors="replace"),
    }
    for where, text in outputs.items():
        for kind, secret in EVERY.items():
            assert secret not in text, f"{kind} in {where}"
