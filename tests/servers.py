"""Real HTTP servers on 127.0.0.1 that record what they receive (webhook receivers)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() when the body had arrived

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Recorder:
    """A webhook receiver: answers with `responses` in turn (then 200), records every request."""

    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    # answers by request when set (like a real API), else `responses` in turn, then 200
    responder: Callable[[Received], tuple[int, dict[str, str], bytes]] | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where it listens."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> Recorder:
        """Listen on a free port of 127.0.0.1 in a thread."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                got = Received(self.path, dict(self.headers), body, time.monotonic())
                with recorder.lock:
                    recorder.received.append(got)
                    if recorder.responses:
                        status, headers, reply = recorder.responses.pop(0)
                    elif recorder.responder is not None:
                        status, headers, reply = recorder.responder(got)
                    else:
                        status, headers, reply = 200, {}, b"ok"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Shut the server down."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def wait_for(
        self, pred: Callable[[Received], bool], timeout_s: float = 20.0, count: int = 1
    ) -> list[Received]:
        """Wait until `count` received requests satisfy `pred`; return them."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                hits = [r for r in self.received if pred(r)]
            if len(hits) >= count or time.monotonic() > deadline:
                return hits
            time.sleep(0.02)
