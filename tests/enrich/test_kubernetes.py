"""Pod attribution: the pure index, and the watch against a Kubernetes-API-like server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from oomwatch.enrich.kubernetes import PodIndex, PodWatcher, pod_info, pod_ref
from oomwatch.errors import NotifyError
from oomwatch.model import FollowUp, Incident, PodRef
from oomwatch.notify.k8s_events import KubernetesEventsNotifier
from oomwatch.notify.sample import sample_incident
from oomwatch.testing import with_pod
from tests.k8s_api import KubeAPI, pod

CID = "25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca"
UID = "5931aa75-4603-4e65-b552-7c71cf55cfb5"


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    """A Kubernetes-API-like server."""
    a = KubeAPI()
    yield a
    a.stop()


def test_owner_and_container_from_a_pod() -> None:
    """ReplicaSet of a Deployment, Job of a CronJob; container ids without the runtime prefix."""
    p = pod_info(pod("api-7f9c5d-x2k", UID, CID))
    assert p is not None
    assert (p.owner_kind, p.owner_name) == ("Deployment", "api")
    assert p.containers == {CID: "api"}
    job = pod_info(
        pod("backup-28912345-abc", "u2", "c2", owner=("Job", "backup-28912345"), labels={})
    )
    assert job is not None
    assert (job.owner_kind, job.owner_name) == ("CronJob", "backup")
    sts = pod_info(pod("db-0", "u3", "c3", owner=("StatefulSet", "db")))
    assert sts is not None
    assert sts.owner() == "StatefulSet/db"
    assert pod_info({"metadata": {}}) is None


def test_lookup_where_and_deleted_pods() -> None:
    """By pod UID or container id; a deleted pod is kept a while, then forgotten."""
    index = PodIndex(keep_deleted_s=60)
    p = pod_info(pod("api-7f9c5d-x2k", UID, CID))
    assert p is not None
    index.upsert(p)
    found = index.lookup(UID, CID)
    assert found is not None
    assert pod_ref(*found).where == "container api of pod shop/api-7f9c5d-x2k (Deployment api)"
    assert index.lookup(None, CID) == found
    index.delete(UID, now=100.0)
    index.expire(now=150.0)
    assert index.lookup(UID, CID) == found  # deleted 50 s ago: still named
    index.expire(now=161.0)
    assert index.lookup(UID, CID) is None


def watch_until(api: KubeAPI, index: PodIndex, done: object, timeout_s: float = 10.0) -> None:
    """Run the watcher until `done()` is true."""

    async def go() -> None:
        w = PodWatcher("node-1", index, api_url=api.url, retry_s=0.2)
        task = asyncio.create_task(w.run())
        deadline = time.monotonic() + timeout_s
        # polls the effect of the watch on the index: there is no event to await
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_watch_fills_the_index_for_this_node_only(api: KubeAPI) -> None:
    """The watch asks for this node's pods and keeps adds and deletes."""
    other = pod("elsewhere", "u9", "c9")
    other["spec"]["nodeName"] = "node-2"
    api.events = [("ADDED", pod("api-7f9c5d-x2k", UID, CID)), ("ADDED", other)]
    index = PodIndex()
    watch_until(api, index, lambda: UID in index.pods)
    assert UID in index.pods
    assert "u9" not in index.pods
    assert any("fieldSelector=spec.nodeName%3Dnode-1" in r for r in api.requests)


def test_forbidden_then_reconnect(api: KubeAPI) -> None:
    """A 403 (RBAC) is survived; the watch tries again and fills the index when allowed."""
    api.status = 403
    api.events = [("ADDED", pod("api-7f9c5d-x2k", UID, CID))]
    index = PodIndex()
    watch_until(api, index, lambda: len(api.requests) >= 2, timeout_s=5)
    assert not index.pods
    api.status = 200
    watch_until(api, index, lambda: UID in index.pods)
    assert UID in index.pods


def test_stream_end_reconnects_and_delete_is_kept(api: KubeAPI) -> None:
    """When the API ends the stream, the watch starts again; a DELETED pod stays named."""
    api.hold_s = 0.2
    api.events = [
        ("ADDED", pod("api-7f9c5d-x2k", UID, CID)),
        ("DELETED", pod("api-7f9c5d-x2k", UID, CID)),
    ]
    index = PodIndex()
    watch_until(api, index, lambda: len(api.requests) >= 3)
    assert len(api.requests) >= 3
    assert UID in index.deleted
    assert index.lookup(UID, CID) is not None


def test_api_down_is_survived() -> None:
    """Nobody answering: the watcher waits and tries again, it does not crash."""
    from tests.agentproc import free_port

    index = PodIndex()

    async def go() -> None:
        w = PodWatcher("node-1", index, api_url=f"http://127.0.0.1:{free_port()}", retry_s=0.1)
        task = asyncio.create_task(w.run())
        await asyncio.sleep(0.5)
        assert not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert not index.pods


def kill_incident(k8s: bool, followup: int = 0) -> Incident:
    """The sample kill, attributed to a pod or not, perhaps a follow-up."""
    inc = sample_incident("node-1")
    if k8s:
        inc = with_pod(inc, PodRef("shop", "api-7f9c5d-x2k", UID, "api"))
    if followup:
        pids = tuple(range(followup))
        inc = replace(
            inc,
            title=f"{followup} more OOM kills",
            followup=FollowUp(followup, pids, tuple(f"k{i}" for i in pids), 300.0),
        )
    return inc


def send_event(api: KubeAPI, inc: Incident, key: str | None = None) -> None:
    """One delivery to the Events receiver (its key: the incident's id unless given)."""
    n = KubernetesEventsNotifier("events", "node-1", api_url=api.url)

    async def go() -> None:
        try:
            await n.send(inc, key or f"{inc.id}/events")
        finally:
            await n.aclose()

    asyncio.run(go())


def test_event_on_the_pod(api: KubeAPI) -> None:
    """An attributed kill: a Warning OOMKilling event on the pod, naming process, RSS, limit."""
    send_event(api, kill_incident(k8s=True))
    (ev,) = api.created
    assert api.requests[-1] == "/api/v1/namespaces/shop/events"
    assert ev["reason"] == "OOMKilling"
    assert ev["type"] == "Warning"
    assert ev["involvedObject"]["kind"] == "Pod"
    assert ev["involvedObject"]["name"] == "api-7f9c5d-x2k"
    assert ev["involvedObject"]["fieldPath"] == "spec.containers{api}"
    assert "stress-ng-vm (pid 183960)" in ev["message"]
    assert "RSS 91.3 MiB" in ev["message"]
    assert "limit 100.0 MiB" in ev["message"]


def test_event_on_the_node_and_storms_as_counts(api: KubeAPI) -> None:
    """Without a pod the event goes on the node; a follow-up is one event with a count."""
    send_event(api, kill_incident(k8s=False))
    send_event(api, kill_incident(k8s=False, followup=40), "followup:events:kill:1/events")
    first, storm = api.created
    assert api.requests[-1] == "/api/v1/namespaces/default/events"
    assert first["involvedObject"] == {"kind": "Node", "name": "node-1", "uid": "node-1"}
    assert storm["count"] == 40
    assert "40 more OOM kills" in storm["message"]


def test_a_repeated_delivery_makes_no_second_event(api: KubeAPI) -> None:
    """The name comes from the delivery key: a repeat after a crash is AlreadyExists, sent."""
    inc = kill_incident(k8s=True)
    send_event(api, inc, "kill:1/events")
    send_event(api, inc, "kill:1/events")  # raises nothing: it was delivered
    send_event(api, inc, "kill:2/events")
    first, other = api.created
    assert first["metadata"]["name"].startswith("api-7f9c5d-x2k.oomwatch.")
    assert first["metadata"]["name"] != other["metadata"]["name"]
    assert len(first["metadata"]["name"]) == len("api-7f9c5d-x2k.oomwatch.") + 16


def test_forbidden_event_is_not_retried(api: KubeAPI) -> None:
    """RBAC refusing event creation is permanent; an API that is down is retried."""
    api.post_status = 403
    with pytest.raises(NotifyError) as e:
        send_event(api, kill_incident(k8s=True))
    assert e.value.retryable is False
    api.stop()
    with pytest.raises(NotifyError) as down:
        send_event(api, kill_incident(k8s=True))
    assert down.value.retryable is True
