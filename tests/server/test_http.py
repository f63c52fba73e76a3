"""The agent's HTTP port: stalled or idle clients never block the probes or /metrics."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from oomwatch import server as http
from oomwatch.server import HealthState, make_app, serve
from oomwatch.store import Store
from tests.agentproc import free_port

pytestmark = pytest.mark.fault


@pytest.fixture
def port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The agent's HTTP app on a free port, with a short connection timeout."""
    monkeypatch.setattr(http._Handler, "timeout", 1.0)
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 4)
    health = HealthState(stale_after_s=60)
    health.ready = True
    number = free_port()
    server = serve(f"127.0.0.1:{number}", make_app(CollectorRegistry(), health, tmp_path / "x.db"))
    yield number
    server.shutdown()
    server.server_close()


def stalled(port: int, first_bytes: bytes = b"") -> socket.socket:
    """A client that connects, sends `first_bytes` (a request cut short) and then nothing."""
    s = socket.create_connection(("127.0.0.1", port))
    if first_bytes:
        s.sendall(first_bytes)
    return s


def test_probes_answer_while_clients_stall(port: int) -> None:
    """Idle connections and half-sent requests do not hold up /-/healthy or /metrics."""
    idle = [stalled(port), stalled(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")]
    try:
        started = time.monotonic()
        assert httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5).text == "ok\n"
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        # well inside the stalled clients' 1 s timeout: they were not waited for
        assert time.monotonic() - started < 0.9
    finally:
        for s in idle:
            s.close()


def test_a_stalled_client_is_cut_off_after_the_timeout(port: int) -> None:
    """The server closes a connection that sends nothing for CONNECTION_TIMEOUT_S."""
    s = stalled(port, b"GET /-/healthy HTTP/1.1\r\n")
    s.settimeout(10)
    started = time.monotonic()
    try:
        rest = s.recv(65536)  # EOF (or an error answer) once the server gives up
    finally:
        s.close()
    waited = time.monotonic() - started
    assert 0.5 < waited < 5, waited
    assert rest == b"" or rest.startswith(b"HTTP/1.")


def test_connections_beyond_the_limit_are_refused_and_slots_come_back(port: int) -> None:
    """More stalled clients than slots: the extra are closed at once; after they go, all is well."""
    hogs = [stalled(port) for _ in range(http.MAX_CONNECTIONS)]
    extra = stalled(port)
    extra.settimeout(5)
    try:
        assert extra.recv(1) == b"", "a connection beyond the limit is closed at once"
    finally:
        extra.close()
        for s in hogs:
            s.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert r.text == "ready\n"


def test_api_answers_other_hosts_only_with_the_token(tmp_path: Path) -> None:
    """/api holds command lines: loopback clients, or a bearer token; probes answer anyone."""
    db = tmp_path / "oomwatch.db"
    Store(db).close()
    app = make_app(CollectorRegistry(), HealthState(60), db, "s3cret")

    def status(path: str, remote: str, auth: str | None = None) -> str:
        got: list[str] = []
        environ = {"PATH_INFO": path, "REMOTE_ADDR": remote, "QUERY_STRING": ""}
        if auth is not None:
            environ["HTTP_AUTHORIZATION"] = auth
        list(app(environ, lambda s, _h: got.append(s)))
        return got[0]

    assert status("/api/v1/incidents", "10.0.0.7") == "403 Forbidden"
    assert status("/api/v1/incidents", "10.0.0.7", "Bearer wrong") == "403 Forbidden"
    assert status("/api/v1/deliveries", "10.0.0.7", "Bearer s3cret") == "200 OK"
    assert status("/api/v1/deliveries", "127.0.0.1") == "200 OK"
    assert status("/api/v1/deliveries", "::1") == "200 OK"
    assert status("/metrics", "10.0.0.7") == "200 OK"
    assert status("/-/healthy", "10.0.0.7") == "200 OK"
    untokened = make_app(CollectorRegistry(), HealthState(60), db)
    got: list[str] = []
    environ = {"PATH_INFO": "/api/v1/incidents", "REMOTE_ADDR": "10.0.0.7", "QUERY_STRING": ""}
    environ["HTTP_AUTHORIZATION"] = "Bearer None"
    list(untokened(environ, lambda s, _h: got.append(s)))
    assert got == ["403 Forbidden"]
