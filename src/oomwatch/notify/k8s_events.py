"""Kubernetes Events: an `OOMKilling` Warning on the pod (or on the node when no pod is known).

`kubectl describe pod` then shows kills that Kubernetes itself never reports (any
process but a container's PID 1). Storms are folded upstream (one event, then one
follow-up whose `count` says how many), so they do not become event storms.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from oomwatch.incidents import Incident
from oomwatch.notify import NotifyError
from oomwatch.notify.render import truncate

MAX_MESSAGE = 1024  # the API accepts more; kubectl shows one line


def event(inc: Incident, node: str, now: dt.datetime) -> tuple[str, dict[str, Any]] | None:
    """(namespace, Event object) for a kill; None for other incidents."""
    if inc.kind != "oom_kill":
        return None
    b = inc.body
    v = b.get("victim") or {}
    k8s = b.get("kubernetes") or None
    memcg = b.get("memcg") or {}
    parts = [f"oomwatch: the kernel OOM-killed {v.get('comm')} (pid {v.get('pid')})"]
    if v.get("rss_kb") is not None:
        parts.append(f"RSS {v['rss_kb'] / 1024:.1f} MiB")
    if memcg.get("limit_kb") is not None and memcg["limit_kb"] < 2**50:
        parts.append(f"limit {memcg['limit_kb'] / 1024:.1f} MiB")
    follow = b.get("followup")
    count = 1 + (follow["count"] - 1 if follow else 0)
    if follow:
        parts = [truncate(inc.title, 400)]
    if k8s:
        namespace = k8s["namespace"]
        target = {
            "kind": "Pod",
            "name": k8s["pod"],
            "namespace": namespace,
            "uid": k8s.get("pod_uid"),
        }
        if k8s.get("container"):
            target["fieldPath"] = f"spec.containers{{{k8s['container']}}}"
    else:
        namespace = "default"
        target = {"kind": "Node", "name": node, "uid": node}
    stamp = now.isoformat().replace("+00:00", "Z")
    obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{target['name']}.oomwatch.", "namespace": namespace},
        "involvedObject": target,
        "reason": "OOMKilling",
        "type": "Warning",
        "message": truncate(", ".join(parts), MAX_MESSAGE),
        "source": {"component": "oomwatch", "host": node},
        "count": count,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
    }
    return namespace, obj


class KubernetesEventsNotifier:
    """Creates Events through the API (in-cluster credentials, or a given API URL)."""

    def __init__(self, name: str, node: str, *, api_url: str | None = None) -> None:
        self.name = name
        self.node = node
        self.api_url = api_url
        self._client: Any = None

    def _api(self) -> Any:
        if self._client is None:
            from oomwatch.enrich.kubernetes import async_client

            self._client = async_client(self.api_url)
        return self._client

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Create one Event; RBAC and validation errors are not retried."""
        made = event(incident, self.node, dt.datetime.now(dt.UTC))
        if made is None:
            return
        namespace, obj = made
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Event

        try:
            await self._api().create(Event.from_dict(obj), namespace=namespace)
        except ApiError as e:
            code = e.status.code or 0
            retry = code == 429 or code >= 500
            raise NotifyError(
                f"kubernetes events: {code} {e.status.reason}",
                retryable=retry,
                reason="server_error" if retry else "client_error",
            ) from None
        except Exception as e:
            raise NotifyError(
                f"kubernetes events: {type(e).__name__}", retryable=True, reason="connection"
            ) from None

    async def aclose(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()
