"""Real HTTP servers on 127.0.0.1 that record what they receive (webhook receivers)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


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
    keep_alive: bool = False  # HTTP/1.1 with persistent connections, as real receivers answer

    @property
    def url(self) -> str:
        """Where it listens."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> Recorder:
        """Listen on a free port of 127.0.0.1 in a thread."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            if recorder.keep_alive:
                protocol_version = "HTTP/1.1"
                disable_nagle_algorithm = True  # the answer's head and body in one segment

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if len(body) < n:
                    return  # the client died mid-request: a server never sees it as one
                got = Received(self.path, dict(self.headers), body, time.monotonic())
                with recorder.lock:
                    recorder.received.append(got)
                    turn = recorder.responses.pop(0) if recorder.responses else None
                # a responder runs outside the lock: it may be slow, and must be thread-safe
                if turn is not None:
                    status, headers, reply = turn
                elif recorder.responder is not None:
                    status, headers, reply = recorder.responder(got)
                else:
                    status, headers, reply = 200, {}, b"ok"
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed before the answer: what a crash test does

            def do_GET(self) -> None:
                self.do_POST()

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


class SlackLike:
    """Slack's Web API as its documentation describes it, with state: a responder.

    chat.postMessage (JSON body, with `metadata`), chat.update, conversations.history
    and conversations.replies (GET, `include_all_metadata`, `oldest`, cursor pages of
    `limit`). Errors answer HTTP 200 with `ok: false`, as Slack does; a missing scope
    names what was needed. `post_delay` holds the answer of a post after it is posted.
    """

    CHANNEL = "C0OOMWATCH1"

    def __init__(self, scopes: frozenset[str] = frozenset({"chat:write", "channels:history"})):
        self.scopes = scopes
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []  # every posted message, in order
        self.post_delay = 0.0
        self.history_calls = 0

    def __call__(self, r: Received) -> tuple[int, dict[str, str], bytes]:
        """Answer one request."""
        method = r.path.split("?")[0].rsplit("/", 1)[-1]
        args = _arguments(r)
        if method == "chat.postMessage":
            return self._post(args)
        if method == "chat.update":
            return _ok({"channel": self.CHANNEL, "ts": args.get("ts")})
        if method in ("conversations.history", "conversations.replies"):
            return self._history(method, {k: str(v) for k, v in args.items()})
        return _ok({})

    def _post(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            # ts are unique per channel: Slack's own clock, in microseconds
            last = float(self.messages[-1]["ts"]) if self.messages else 0.0
            ts = f"{max(time.time(), last + 1e-6):.6f}"
            msg = {"type": "message", "ts": ts, "text": body.get("text", ""), "body": body}
            if body.get("thread_ts"):
                msg["thread_ts"] = body["thread_ts"]
            if body.get("metadata"):
                msg["metadata"] = body["metadata"]
            self.messages.append(msg)
        if self.post_delay:
            time.sleep(self.post_delay)
        return _ok({"channel": self.CHANNEL, "ts": ts, "message": {"text": msg["text"]}})

    def _history(self, method: str, q: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.history_calls += 1
            if "channels:history" not in self.scopes:
                return _fail("missing_scope", needed="channels:history")
            if q.get("channel") != self.CHANNEL:
                return _fail("channel_not_found")
            oldest = float(q.get("oldest") or 0)
            if method == "conversations.history":
                # the channel: heads only, newest first
                found = [m for m in self.messages if "thread_ts" not in m]
                found.reverse()
            else:
                found = [
                    m
                    for m in self.messages
                    if m["ts"] == q.get("ts") or m.get("thread_ts") == q.get("ts")
                ]
            found = [m for m in found if float(m["ts"]) >= oldest]
            start = int(q.get("cursor") or 0)
            limit = int(q.get("limit") or 100)
            page = found[start : start + limit]
            more = start + limit < len(found)
            shown = []
            for m in page:
                out = {k: v for k, v in m.items() if k != "body"}
                if q.get("include_all_metadata") not in ("1", "true", "True"):
                    out.pop("metadata", None)
                shown.append(out)
            meta = {"next_cursor": str(start + limit) if more else ""}
            return _ok({"messages": shown, "has_more": more, "response_metadata": meta})

    def posts(self) -> list[dict[str, Any]]:
        """The posted messages, as the channel holds them."""
        with self.lock:
            return list(self.messages)

    def wait(
        self, pred: Callable[[dict[str, Any]], bool], count: int = 1, timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` posted messages satisfy `pred`; return them."""
        deadline = time.monotonic() + timeout_s
        while True:
            hits = [m for m in self.posts() if pred(m)]
            if len(hits) >= count or time.monotonic() > deadline:
                return hits
            time.sleep(0.02)

    def keys(self) -> list[str]:
        """The delivery key of each posted message, in order."""
        return [
            m.get("metadata", {}).get("event_payload", {}).get("delivery_key", "")
            for m in self.posts()
        ]


def _arguments(r: Received) -> dict[str, Any]:
    """A Web API call's arguments: query string, form body or JSON body, as Slack takes them."""
    args: dict[str, Any] = dict(parse_qsl(urlsplit(r.path).query))
    kind = next((v for k, v in r.headers.items() if k.lower() == "content-type"), "")
    if r.body and "json" in kind:
        args.update(r.json())
    elif r.body:
        args.update(parse_qsl(r.body.decode()))
    return args


def _ok(data: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps({"ok": True, **data}).encode()


def _fail(error: str, **more: str) -> tuple[int, dict[str, str], bytes]:
    body = {"ok": False, "error": error, **more}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
