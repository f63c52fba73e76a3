"""A server on 127.0.0.1 that answers the Kubernetes API's pod watch like a real API server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def pod(
    name: str,
    uid: str,
    container_id: str,
    *,
    namespace: str = "shop",
    container: str = "api",
    owner: tuple[str, str] | None = ("ReplicaSet", "api-7f9c5d"),
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Pod object as the API serves it."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "resourceVersion": "1",
        "labels": labels if labels is not None else {"app": "api", "pod-template-hash": "7f9c5d"},
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": "owner-uid",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": "node-1", "containers": [{"name": container, "image": "x"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": container,
                    "containerID": f"containerd://{container_id}",
                    "ready": True,
                    "restartCount": 0,
                    "image": "x",
                    "imageID": "x",
                    "state": {"running": {}},
                }
            ],
        },
    }


class KubeAPI:
    """Serves `GET /api/v1/pods?watch=true&fieldSelector=spec.nodeName=...` as a stream.

    `events` are sent on each watch, then the stream stays open for `hold_s`; a
    `status` other than 200 answers the watch with that error (403, 500).
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        self.hold_s = 30.0
        self.requests: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.post_status = 201
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api.requests.append(self.path)
                url = urlparse(self.path)
                q = parse_qs(url.query)
                if url.path != "/api/v1/pods" or q.get("watch") != ["true"]:
                    self._json(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                    return
                if api.status != 200:
                    self._json(
                        api.status,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "code": api.status,
                            "reason": "Forbidden" if api.status == 403 else "InternalError",
                            "message": "pods is forbidden",
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                node = q.get("fieldSelector", [""])[0]
                for kind, obj in list(api.events):
                    if node == f"spec.nodeName={obj['spec']['nodeName']}":
                        self._chunk(json.dumps({"type": kind, "object": obj}) + "\n")
                deadline = time.monotonic() + api.hold_s
                try:
                    while time.monotonic() < deadline:
                        time.sleep(0.1)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass

            def do_POST(self) -> None:
                api.requests.append(self.path)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                parts = urlparse(self.path).path.split("/")
                if len(parts) != 6 or parts[-1] != "events":
                    self._json(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                    return
                if api.post_status != 201:
                    self._json(
                        api.post_status,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "code": api.post_status,
                            "reason": "Forbidden",
                            "message": "events is forbidden: User cannot create resource",
                        },
                    )
                    return
                meta = body["metadata"]
                meta.setdefault("name", meta.get("generateName", "") + "abcde")
                meta["namespace"] = parts[4]
                if any(c["metadata"]["name"] == meta["name"] for c in api.created):
                    self._json(
                        409,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "message": f'events "{meta["name"]}" already exists',
                            "reason": "AlreadyExists",
                            "code": 409,
                        },
                    )
                    return
                api.created.append(body)
                self._json(201, body)

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """The API server's address."""
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        """Shut down."""
        self.server.shutdown()
        self.server.server_close()
