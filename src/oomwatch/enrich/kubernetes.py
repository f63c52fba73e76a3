"""Pod attribution: a kill's container id or pod UID to namespace, pod, container, owner.

The ids come from the cgroup path; the answers from a cache of this node's pods, which
a watch (`spec.nodeName=<node>`) keeps current. The hot path (a kill) only looks the
cache up. Deleted pods are kept a while, so a pod gone before its kill is read is still
named. lightkube is imported only when Kubernetes is in use.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from oomwatch.model import PodRef

log = logging.getLogger("oomwatch.kubernetes")

KEEP_DELETED_S = 900.0
_CRONJOB_JOB = re.compile(r"^(?P<cronjob>.+)-\d{8,}$")


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What an incident says about a pod."""

    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    owner_kind: str | None
    owner_name: str | None
    containers: dict[str, str]  # container id (no runtime prefix) -> container name

    def owner(self) -> str | None:
        """`Kind/name` of the workload that owns the pod."""
        return f"{self.owner_kind}/{self.owner_name}" if self.owner_kind else None


def pod_info(pod: dict[str, Any]) -> PodInfo | None:
    """A PodInfo from a Pod as the API returns it (JSON); None when it is not a pod."""
    meta = pod.get("metadata") or {}
    if not meta.get("uid") or not meta.get("name"):
        return None
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    owner_kind = owner_name = None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            owner_kind, owner_name = ref.get("kind"), ref.get("name")
    # a ReplicaSet of a Deployment is named <deployment>-<pod-template-hash>
    if owner_kind == "ReplicaSet" and owner_name:
        h = labels.get("pod-template-hash")
        if h and owner_name.endswith(f"-{h}"):
            owner_kind, owner_name = "Deployment", owner_name[: -len(h) - 1]
    # a Job of a CronJob is named <cronjob>-<scheduled time in minutes>
    if owner_kind == "Job" and owner_name:
        m = _CRONJOB_JOB.match(owner_name)
        if m:
            owner_kind, owner_name = "CronJob", m.group("cronjob")
    containers: dict[str, str] = {}
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            cid = cs.get("containerID") or ""
            if "://" in cid and cs.get("name"):
                containers[cid.split("://", 1)[1]] = cs["name"]
    return PodInfo(
        meta.get("namespace") or "default",
        meta["name"],
        meta["uid"],
        labels,
        owner_kind,
        owner_name,
        containers,
    )


@dataclass(slots=True)
class PodIndex:
    """This node's pods by UID, with deleted ones kept `keep_deleted_s`. No I/O."""

    keep_deleted_s: float = KEEP_DELETED_S
    pods: dict[str, PodInfo] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)

    def upsert(self, pod: PodInfo) -> None:
        """A pod added or changed."""
        self.pods[pod.uid] = pod
        self.deleted.pop(pod.uid, None)

    def delete(self, uid: str, now: float) -> None:
        """A pod deleted: kept a while for kills read late."""
        if uid in self.pods:
            self.deleted[uid] = now

    def expire(self, now: float) -> None:
        """Forget pods deleted long ago."""
        for uid in [u for u, t in self.deleted.items() if now - t > self.keep_deleted_s]:
            self.deleted.pop(uid)
            self.pods.pop(uid, None)

    def lookup(
        self, pod_uid: str | None, container_id: str | None
    ) -> tuple[PodInfo, str | None] | None:
        """(pod, container name) for a kill's pod UID or container id."""
        if pod_uid and pod_uid in self.pods:
            pod = self.pods[pod_uid]
            return pod, pod.containers.get(container_id or "")
        if container_id:
            for pod in self.pods.values():
                if container_id in pod.containers:
                    return pod, pod.containers[container_id]
        return None


def pod_ref(pod: PodInfo, container: str | None) -> PodRef:
    """What an incident says about the pod of a kill."""
    return PodRef(
        pod.namespace, pod.name, pod.uid, container, pod.owner_kind, pod.owner_name, pod.labels
    )


class PodWatcher:
    """Keeps a PodIndex current with a watch on this node's pods; restarts after errors."""

    def __init__(
        self, node: str, index: PodIndex, *, api_url: str | None = None, retry_s: float = 5.0
    ) -> None:
        self.node = node
        self.index = index
        self.api_url = api_url
        self.retry_s = retry_s
        self.connected = False

    def _client(self) -> Any:
        return async_client(self.api_url)

    async def run(self) -> None:
        """Watch forever; a failure (403, API down, closed stream) waits and watches again."""
        from lightkube.resources.core_v1 import Pod

        while True:
            try:
                client = self._client()
                async for op, pod in client.watch(
                    Pod, namespace="*", fields={"spec.nodeName": self.node}
                ):
                    self.connected = True
                    raw = pod.to_dict() if hasattr(pod, "to_dict") else dict(pod)
                    info = pod_info(raw)
                    if info is None:
                        continue
                    if op == "DELETED":
                        self.index.delete(info.uid, time.time())
                    else:
                        self.index.upsert(info)
                    self.index.expire(time.time())
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the watch must outlive any API or client fault
                log.warning(
                    "pod watch on node %s failed: %s; again in %.0f s",
                    self.node,
                    _short(e),
                    self.retry_s,
                )
            self.connected = False
            await asyncio.sleep(self.retry_s)


def async_client(api_url: str | None) -> Any:
    """A lightkube client: in-cluster (service account), else the kubeconfig.

    With `api_url` (a `kubectl proxy` or a test server), no credentials of our own.
    """
    from lightkube import AsyncClient, KubeConfig
    from lightkube.config.models import Cluster, User

    if api_url:
        return AsyncClient(config=KubeConfig.from_one(cluster=Cluster(server=api_url), user=User()))
    return AsyncClient()


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]


def transport_errors() -> tuple[type[BaseException], ...]:
    """The exceptions lightkube's HTTP layer raises: httpx's, or httpx2's in lightkube 1.x."""
    import httpx

    errors: list[type[BaseException]] = [httpx.HTTPError, OSError]
    try:
        import httpx2
    except ImportError:
        pass
    else:
        errors.append(httpx2.HTTPError)
    return tuple(errors)
