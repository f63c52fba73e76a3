"""The agent built in process with a fake follower: ingest, delivery and supervision, no root."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import httpx
import pytest

from oomwatch.agent import Agent
from oomwatch.model import Snapshot
from oomwatch.notify.sample import REPORT
from oomwatch.settings import Settings
from oomwatch.testing import FakeFollower, RecordingNotifier
from tests.agentproc import free_port
from tests.waits import until


def run_agent(
    tmp_path: Path,
    body: Callable[[Agent, FakeFollower], Awaitable[None]],
    first_start: Literal["summary", "all", "new"] = "all",
    **more: object,
) -> Agent:
    """An agent on a fake follower and a recording notifier while `body` runs."""
    follower = FakeFollower()
    settings = Settings(
        state_dir=tmp_path,
        listen=f"127.0.0.1:{free_port()}",
        sample_interval=0.2,
        first_start=first_start,
        **more,  # type: ignore[arg-type]
    )
    agent = Agent(settings, {"rec": RecordingNotifier("rec")}, source=lambda: follower)
    agent.supervisor.delay_s = 0.2

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await until(lambda: agent.health.ready)
            await body(agent, follower)
        finally:
            stop.set()
            await task

    asyncio.run(go())
    return agent


async def get(agent: Agent, path: str) -> httpx.Response:
    """GET from the agent's own HTTP port."""
    async with httpx.AsyncClient() as c:
        return await c.get(f"http://{agent.settings.listen}{path}", timeout=5)


def test_a_kill_read_is_delivered(tmp_path: Path) -> None:
    """A report fed to the follower becomes one incident at the notifier."""

    async def body(agent: Agent, f: FakeFollower) -> None:
        f.feed(REPORT.splitlines())
        rec = agent.notifiers["rec"]
        assert isinstance(rec, RecordingNotifier)
        await until(lambda: len(rec.sent) == 1)
        assert rec.sent[0].victim is not None
        assert rec.sent[0].victim.comm == "stress-ng-vm"

    run_agent(tmp_path, body)


def test_healthy_turns_false_while_the_dispatcher_is_dead(tmp_path: Path) -> None:
    """The dispatcher dies: /-/healthy says so, the supervisor restarts it, healthy again."""
    died = asyncio.Event()

    async def body(agent: Agent, f: FakeFollower) -> None:
        original = agent.dispatcher.run
        calls = {"n": 0}

        async def flaky() -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                died.set()
                raise RuntimeError("boom")
            await original()

        assert (await get(agent, "/-/healthy")).status_code == 200
        # the restart waits this long: the probe below asks while the task is down
        agent.supervisor.delay_s = 1.0
        agent.supervisor.tasks["dispatcher"].cancel()
        agent.supervisor.start("dispatcher", flaky)
        await until(lambda: "dispatcher" in agent.health.failed)
        r = await get(agent, "/-/healthy")
        assert r.status_code == 503
        assert "dispatcher died: RuntimeError" in r.text
        await until(lambda: calls["n"] == 2)
        assert (await get(agent, "/-/healthy")).status_code == 200
        f.feed(REPORT.splitlines())  # and delivery works again
        rec = agent.notifiers["rec"]
        assert isinstance(rec, RecordingNotifier)
        await until(lambda: len(rec.sent) == 1)

    agent = run_agent(tmp_path, body)
    assert died.is_set()
    assert agent.metrics.task_restarts.labels("dispatcher")._value.get() == 1


KMSG_REPORT = Path(__file__).parent / "data" / "corpus" / "034-linux618-kmsg-raw-memcg-v1.log"


def _kmsg_kill(n: int, uptime_s: float) -> list[str]:
    """The corpus kmsg report as kill number `n` (its own seq, pid and uptime)."""
    out = []
    for i, line in enumerate(KMSG_REPORT.read_text().splitlines()):
        head, _, text = line.partition(";")
        prio = head.split(",")[0]
        stamp = int(uptime_s * 1e6) + i
        out.append(f"{prio},{n * 1000 + i},{stamp},-;" + text.replace("21502", str(30000 + n)))
    return out


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _before_start() -> float:
    """An uptime before the agent's start, even on a machine booted a minute ago."""
    return _uptime() / 2


def test_first_start_sends_the_log_s_kills_as_one_summary(tmp_path: Path) -> None:
    """Five kills already in the log at a first start: one summary, then new kills one by one."""

    async def body(agent: Agent, f: FakeFollower) -> None:
        rec = agent.notifiers["rec"]
        assert isinstance(rec, RecordingNotifier)
        old = _before_start()
        f.feed([line for n in range(5) for line in _kmsg_kill(n, old + n / 10)])
        await until(lambda: len(rec.sent) == 1)
        (summary,) = rec.sent
        assert summary.kind == "kills_before_start"
        assert summary.severity == "info"
        assert summary.title.startswith("5 OOM kills since boot on ")
        body = summary.body()
        assert body["count"] == 5
        assert [line.split(": ", 1)[1] for line in body["kills"]] == [
            f"python3 (pid {30000 + n}) in cgroup /demo-limit48m" for n in range(5)
        ]
        f.feed(_kmsg_kill(9, _uptime() + 1))  # after the start: its own alert
        await until(lambda: len(rec.sent) == 2)
        assert rec.sent[1].kind == "oom_kill"
        assert rec.sent[1].victim is not None
        assert rec.sent[1].victim.pid == 30009

    run_agent(tmp_path, body, first_start="summary")


def test_a_restart_with_state_sends_the_log_s_kills_normally(tmp_path: Path) -> None:
    """State present (a reboot, a restart): kills read from the log go out one by one."""

    async def first(_agent: Agent, f: FakeFollower) -> None:
        f.feed(["6,1,1,-;Linux version 6.18"])
        await asyncio.sleep(0)

    run_agent(tmp_path, first, first_start="summary")

    async def again(agent: Agent, f: FakeFollower) -> None:
        rec = agent.notifiers["rec"]
        assert isinstance(rec, RecordingNotifier)
        old = _before_start()
        f.feed([line for n in range(3) for line in _kmsg_kill(n, old + n / 10)])
        await until(lambda: len(rec.sent) == 1)  # the other two share its key: a follow-up
        stored = (await get(agent, "/api/v1/incidents")).json()
        assert sorted(i["kind"] for i in stored) == ["oom_kill"] * 3
        assert rec.sent[0].kind == "oom_kill"

    run_agent(tmp_path, again, first_start="summary")


def test_a_failing_sample_stops_neither_sampling_nor_ingest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Samples that raise (a /proc race, a bug): one log line, sampling and kills go on."""

    async def body(agent: Agent, f: FakeFollower) -> None:
        real = agent.sampler.sample
        calls = {"n": 0}

        def flaky() -> Snapshot:
            calls["n"] += 1
            if calls["n"] <= 3:
                raise PermissionError(13, "Permission denied", "/proc/4242/stat")
            return real()

        agent.sampler.sample = flaky  # type: ignore[method-assign]
        await until(lambda: calls["n"] >= 5)  # went on sampling past the failures
        assert agent.ingest.builder.snapshot is not None
        assert (await get(agent, "/-/healthy")).status_code == 200
        f.feed(REPORT.splitlines())
        rec = agent.notifiers["rec"]
        assert isinstance(rec, RecordingNotifier)
        await until(lambda: len(rec.sent) == 1)

    with caplog.at_level(logging.ERROR, logger="oomwatch"):
        run_agent(tmp_path, body)
    failed = [r for r in caplog.records if "memory sample failed" in r.getMessage()]
    assert len(failed) == 1, "one line a minute, not one per failed sample"
    assert "PermissionError" in failed[0].getMessage()
