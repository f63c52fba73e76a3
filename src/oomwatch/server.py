"""HTTP endpoints: /metrics, /-/healthy, /-/ready, and /api/v1/incidents (for `drill`)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from oomwatch.model.plain import compact
from oomwatch.render.fit import ENVELOPE, PAYLOAD_BYTES, fit
from oomwatch.store import read_deliveries, read_incidents

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


# A client that connects and stalls holds one thread for at most this long; the
# probes and /metrics are answered meanwhile by other threads.
CONNECTION_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 32  # beyond this, a new connection is closed at once


class _Handler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT_S  # a socket timeout on every read and write of the connection

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log."""


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per connection, at most MAX_CONNECTIONS at a time."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread of its own, or refuse at once when all slots are taken."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve, then free the slot whatever happened."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HealthState:
    """What the probes answer from: the loop's heartbeat, the tasks that are down, the source."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.heartbeat = time.monotonic()
        self.ready = False
        self.failed: dict[str, str] = {}  # task name -> why it is down
        # working, but short of something (a full disk): healthy, since a restart
        # would lose what waits in memory, and said in the probe's answer
        self.degraded: str | None = None

    def beat(self) -> None:
        """The event loop is alive."""
        self.heartbeat = time.monotonic()

    def up(self, task: str) -> None:
        """A supervised task runs (again)."""
        self.failed.pop(task, None)

    def down(self, task: str, why: str) -> None:
        """A supervised task died and waits to be restarted."""
        self.failed[task] = why

    @property
    def healthy(self) -> bool:
        """The loop has beaten recently and no supervised task is down."""
        return not self.failed and time.monotonic() - self.heartbeat < self.stale_after_s

    def fine(self) -> bytes:
        """The healthy probe's answer: ok, or what it is short of."""
        return b"ok\n" if self.degraded is None else f"degraded: {self.degraded}\n".encode()

    def problem(self) -> bytes:
        """Why the agent is not healthy, for the probe's answer."""
        if self.failed:
            return ("".join(f"{k} {v}\n" for k, v in sorted(self.failed.items()))).encode()
        return b"event loop stalled\n"


def make_app(
    registry: CollectorRegistry, health: HealthState, db_path: Path, api_token: str | None = None
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application.

    /api/* carries command lines: it answers clients on this host, and others only
    with `Authorization: Bearer <api_token>`; the probes and /metrics answer anyone.
    """

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/api/") and not _may_read_api(environ, api_token):
            return _reply(start, "403 Forbidden", FORBIDDEN)
        if path == "/metrics":
            return _reply(start, "200 OK", generate_latest(registry), CONTENT_TYPE_LATEST)
        probe = {
            "/-/healthy": (health.healthy, health.fine(), health.problem()),
            "/-/ready": (health.ready, b"ready\n", b"not reading the kernel log yet\n"),
        }
        if path in probe:
            ok, yes, no = probe[path]
            return _reply(start, "200 OK" if ok else "503 Service Unavailable", yes if ok else no)
        if path == "/api/v1/incidents":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            try:
                since = float(query.get("since", ["0"])[0])
                before = float(query.get("before", ["inf"])[0])
                limit = int(query.get("limit", [str(API_PAGE)])[0])
            except ValueError:
                return _reply(start, "400 Bad Request", API_USAGE)
            if not 1 <= limit <= API_PAGE_MAX:
                return _reply(start, "400 Bad Request", API_USAGE)
            body = compact(_incidents(db_path, since, before, limit)).encode()
            return _reply(start, "200 OK", body, "application/json")
        if path == "/api/v1/deliveries":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            incident = query.get("incident", [""])[0][:200]
            body = json.dumps(_deliveries(db_path, incident)).encode()
            return _reply(start, "200 OK", body, "application/json")
        return _reply(start, "404 Not Found", b"not found\n")

    return app


def serve(
    listen: str, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
) -> WSGIServer:
    """Start the server in a daemon thread; the caller shuts it down."""
    host, _, port = listen.rpartition(":")
    server = make_server(
        host.strip("[]"), int(port), app, server_class=_Server, handler_class=_Handler
    )
    threading.Thread(target=server.serve_forever, name="oomwatch-http", daemon=True).start()
    return server


API_PAGE, API_PAGE_MAX = 50, 200  # incidents per answer, each at most PAYLOAD_BYTES
API_USAGE = (
    b"since, before: Unix seconds (detected in [since, before), newest first); "
    b"limit: 1-200 incidents, 50 unless given\n"
)
FORBIDDEN = (
    b"/api answers this host only, or a bearer token (OOMWATCH_API_TOKEN_FILE): "
    b"it holds command lines\n"
)


def _may_read_api(environ: dict[str, Any], token: str | None) -> bool:
    try:
        if ipaddress.ip_address(str(environ.get("REMOTE_ADDR", ""))).is_loopback:
            return True
    except ValueError:
        pass
    given = str(environ.get("HTTP_AUTHORIZATION", ""))
    return token is not None and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _deliveries(db_path: Path, incident: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return read_deliveries(db, incident)
    finally:
        db.close()


def _incidents(db_path: Path, since: float, before: float, limit: int) -> list[dict[str, Any]]:
    # a connection of this thread's own, read-only: the loop's one is not shared
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [
            fit(d, PAYLOAD_BYTES, keep=ENVELOPE) for d in read_incidents(db, since, limit, before)
        ]
    finally:
        db.close()


def _reply(
    start: StartResponse, status: str, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> list[bytes]:
    start(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
