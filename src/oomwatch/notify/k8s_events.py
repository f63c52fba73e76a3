"""Kubernetes Events: an `OOMKilling` Warning on the pod (or on the node when no pod is known).

`kubectl describe pod` then shows kills that Kubernetes itself never reports (any
process but a container's PID 1). Storms are folded upstream (one event, then one
follow-up whose `count` says how many), so they do not become event storms.

Each Event's name is derived from its delivery key: a repeat after a crash is
refused by the API as AlreadyExists (409), which means it was delivered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.model import UNLIMITED_KB, Incident
from oomwatch.notify.common import Context, HttpUrl, NotifierKind, masked_url
from oomwatch.notify.facts import truncate
from oomwatch.notify.http import status_error
from oomwatch.strict import Strict, checked

if TYPE_CHECKING:
    from oomwatch.settings import Settings

MAX_MESSAGE = 1024  # the API accepts more; kubectl shows one line
MAX_NAME = 253  # an object name is a DNS subdomain


def event(
    inc: Incident, node: str, now: dt.datetime, delivery_key: str = ""
) -> tuple[str, dict[str, Any]] | None:
    """(namespace, Event object) for a kill; None for other incidents."""
    k = inc.kill
    if k is None:
        return None
    v = k.kill.victim
    parts = [f"oomwatch: the kernel OOM-killed {v.comm} (pid {v.pid})"]
    if v.rss_kb is not None:
        parts.append(f"RSS {v.rss_kb / 1024:.1f} MiB")
    m = k.kill.memcg
    if m is not None and m.limit_kb < UNLIMITED_KB:
        parts.append(f"limit {m.limit_kb / 1024:.1f} MiB")
    count = 1
    if inc.followup is not None:
        count = inc.followup.count
        parts = [truncate(inc.title, 400)]
    pod = k.pod
    target: dict[str, Any]
    if pod is not None:
        namespace = pod.namespace
        target = {"kind": "Pod", "name": pod.pod, "namespace": namespace, "uid": pod.pod_uid}
        if pod.container:
            target["fieldPath"] = f"spec.containers{{{pod.container}}}"
    else:
        namespace = "default"
        target = {"kind": "Node", "name": node, "uid": node}
    stamp = now.isoformat().replace("+00:00", "Z")
    obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": _name(target["name"], delivery_key), "namespace": namespace},
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


def _name(on: str, delivery_key: str) -> str:
    """`<object>.oomwatch.<16 hex of the delivery key>`: the same for a repeat of a delivery."""
    digest = hashlib.sha256(delivery_key.encode()).hexdigest()[:16]
    suffix = f".oomwatch.{digest}"
    return on[: MAX_NAME - len(suffix)].rstrip(".-") + suffix


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
        """Create one Event; RBAC and validation errors are not retried; a repeat is a no-op."""
        made = event(incident, self.node, dt.datetime.now(dt.UTC), delivery_key)
        if made is None:
            return
        namespace, obj = made
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Event

        from oomwatch.enrich.kubernetes import transport_errors

        try:
            await self._api().create(Event.from_dict(obj), namespace=namespace)
        except ApiError as e:
            if e.status.code == 409:
                return  # AlreadyExists: this delivery's Event was made before a crash
            err = status_error(
                e.status.code or 500, "kubernetes events", body=str(e.status.reason or "")
            )
            raise err or NotifyError(
                "kubernetes events: unexpected answer",
                retryable=True,
                reason=FailureReason.SERVER_ERROR,
            ) from None
        except transport_errors() as e:
            timeout = "Timeout" in type(e).__name__
            raise NotifyError(
                f"kubernetes events: {'timed out' if timeout else type(e).__name__}",
                retryable=True,
                reason=FailureReason.TIMEOUT if timeout else FailureReason.CONNECTION,
            ) from None

    async def aclose(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()


@dataclass(frozen=True, kw_only=True)
class KubernetesEventsConfig(Strict):
    """Kubernetes Events on the pod (or node) of each kill."""

    api_url: HttpUrl | None = None


def _build(name: str, c: KubernetesEventsConfig, ctx: Context) -> KubernetesEventsNotifier:
    import socket

    return KubernetesEventsNotifier(name, ctx.node or socket.gethostname(), api_url=c.api_url)


def _describe(c: KubernetesEventsConfig) -> str:
    return f"({masked_url(c.api_url) if c.api_url else 'in-cluster API'})"


def _from_settings(s: Settings) -> KubernetesEventsConfig | None:
    if not s.kubernetes_events:
        return None
    return checked(KubernetesEventsConfig, api_url=s.kubernetes_api_url)


KIND = NotifierKind("kubernetes_events", KubernetesEventsConfig, _build, _describe, _from_settings)
