"""The agent built in process with a fake follower: ingest, delivery and supervision, no root."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from oomwatch.agent import Agent
from oomwatch.notify.sample import REPORT
from oomwatch.settings import Settings
from oomwatch.testing import FakeFollower, RecordingNotifier
from tests.agentproc import free_port


async def until(fact: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait until `fact()` holds, or fail."""
    deadline = time.monotonic() + timeout_s
    while not fact():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def run_agent(tmp_path: Path, body: Callable[[Agent, FakeFollower], Awaitable[None]]) -> Agent:
    """An agent on a fake follower and a recording notifier while `body` runs."""
    follower = FakeFollower()
    settings = Settings(state_dir=tmp_path, listen=f"127.0.0.1:{free_port()}", sample_interval=0.2)
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
