"""Test helpers shipped with oomwatch: incidents, a recording notifier, a fake follower."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace

from oomwatch.errors import NotifyError
from oomwatch.model import (
    ConditionFacts,
    Container,
    Explanation,
    Incident,
    KillFacts,
    NodeInfo,
    OomKill,
    PodRef,
    Severity,
    Status,
    Victim,
    fingerprint,
)
from oomwatch.sources import Batch

NODE = NodeInfo("node-1", "6.1.0-test", "boot-1")
EXPLANATION = Explanation(
    "w (pid 1) was killed.", ("The cgroup reached its limit.",), ("Raise the limit.",)
)


def make_kill(
    n: int = 1,
    *,
    comm: str = "w",
    cgroup: str | None = "/cg",
    message: str = "Memory cgroup out of memory",
    container: Container | None = None,
    uid: int | None = 0,
) -> OomKill:
    """A kernel kill of pid `n` in `cgroup` (None: a report without a cgroup)."""
    return OomKill(
        killer="kernel",
        victim=Victim(pid=n, comm=comm, uid=uid, rss_kb=1024),
        seq=n,
        message=message,
        task_memcg=cgroup,
        oom_memcg=cgroup,
        container=container,
    )


def make_incident(
    n: int = 1,
    *,
    kind: str = "oom_kill",
    status: Status = "firing",
    severity: Severity = "critical",
    key: str | None = None,
    comm: str = "w",
    cgroup: str | None = "/cg",
    message: str = "Memory cgroup out of memory",
    pod: PodRef | None = None,
    title: str | None = None,
    detected_at: float | None = None,
    drill: bool = False,
) -> Incident:
    """A kill incident of pid `n` (or a condition, for any other kind)."""
    at = time.time() if detected_at is None else detected_at
    if kind == "oom_kill":
        kill = make_kill(n, comm=comm, cgroup=cgroup, message=message)
        return Incident(
            f"kill:{n}",
            key or fingerprint("oom_kill", NODE.hostname, cgroup, comm),
            kind,
            "event",
            status,
            severity,
            title or f"kill {n}",
            at,
            KillFacts(kill, NODE, EXPLANATION, pod=pod),
            drill=drill,
        )
    facts = ConditionFacts(kind, cgroup or "system", 95.0, 90.0, at, NODE.hostname, f"{kind} {n}")
    return Incident(
        f"{kind}:{n}:{status}",
        key or fingerprint(kind, NODE.hostname, cgroup),
        kind,
        "condition",
        status,
        severity,
        title or f"{kind} {n}",
        at,
        facts,
    )


@dataclass
class RecordingNotifier:
    """A notifier that keeps what it was sent, and fails or raises when told to."""

    name: str = "recorder"
    sent: list[Incident] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    fail_with: NotifyError | None = None
    raise_with: Exception | None = None
    delay_s: float = 0.0
    attempts: int = 0  # every call of send, failed ones too

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Record the incident, after the delay and unless told to fail."""
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.raise_with is not None:
            raise self.raise_with
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(incident)
        self.keys.append(delivery_key)

    async def aclose(self) -> None:
        """Nothing to release."""


class FakeFollower:
    """A follower fed by the test: `feed()` lines, and the agent reads them as a batch."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._n = 0
        self.closed = False

    @property
    def cursor(self) -> str | None:
        """How many batches were handed out."""
        return str(self._n)

    def feed(self, lines: Iterable[bytes | str], lost: int = 0) -> None:
        """Queue one batch."""
        raw = [x.encode() if isinstance(x, str) else x for x in lines]
        self._queue.put_nowait(Batch(raw, str(self._n + 1), lost))

    async def batches(self) -> AsyncIterator[Batch]:
        """The fed batches, as they come."""
        while True:
            batch = await self._queue.get()
            self._n += 1
            yield batch

    def close(self) -> None:
        """Nothing to release."""
        self.closed = True


def with_victim(inc: Incident, comm: str, cmdline: tuple[str, ...] | None = None) -> Incident:
    """The same kill with another process name (and command line)."""
    f = inc.facts
    if not isinstance(f, KillFacts):
        raise TypeError(f"{inc.id} is not a kill")
    kill = replace(f.kill, victim=replace(f.kill.victim, comm=comm))
    process = replace(f.process, cmdline=cmdline) if cmdline else f.process
    return replace(inc, facts=replace(f, kill=kill, process=process))


def with_pod(inc: Incident, pod: PodRef | None) -> Incident:
    """The same kill, attributed to a pod (or to none)."""
    f = inc.facts
    if not isinstance(f, KillFacts):
        raise TypeError(f"{inc.id} is not a kill")
    return replace(inc, facts=replace(f, pod=pod))
