"""systemd's notify protocol: READY=1 when reading, WATCHDOG=1 only while healthy, STOPPING=1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from oomwatch.sdnotify import Notify, notify_forever
from oomwatch.server import HealthState
from tests.agentproc import AgentProcess


@contextlib.contextmanager
def listening(path: Path) -> Iterator[socket.socket]:
    """A datagram socket at `path`, as systemd's NOTIFY_SOCKET."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(10)
    try:
        yield s
    finally:
        s.close()


def messages(s: socket.socket, until: str, timeout_s: float = 10.0) -> list[str]:
    """Datagrams received until one holds the field `until`."""
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got.append(s.recv(4096).decode())
        if until in got[-1].split("\n"):
            return got
    raise AssertionError(f"no {until} in {got}")


def test_the_socket_and_watchdog_come_from_the_environment() -> None:
    """A path or an abstract name; a watchdog meant for another pid is not ours."""
    assert Notify({}).enabled is False
    assert Notify({"NOTIFY_SOCKET": "@sd"}).address == "\0sd"
    n = Notify({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000"})
    assert (n.address, n.watchdog_s) == ("/run/x", 4.0)
    assert (
        Notify({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4", "WATCHDOG_PID": "1"}).watchdog_s
        is None
    )


def test_no_watchdog_while_a_task_is_down(tmp_path: Path) -> None:
    """The watchdog stops while the dispatcher is down and comes back with it."""
    health = HealthState(60)
    health.ready = True
    with listening(tmp_path / "notify") as s:
        n = Notify({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"})

        async def go() -> list[str]:
            task = asyncio.create_task(notify_forever(n, health, lambda: "ok"))
            try:
                await asyncio.to_thread(messages, s, "WATCHDOG=1")
                health.down("dispatcher", "died: KeyError")
                await asyncio.to_thread(s.recv, 4096)  # one that may have been on its way
                quiet = [(await asyncio.to_thread(s.recv, 4096)).decode() for _ in range(3)]
                health.up("dispatcher")
                await asyncio.to_thread(messages, s, "WATCHDOG=1")
                return quiet
            finally:
                task.cancel()

        quiet = asyncio.run(go())
    assert quiet
    assert all("WATCHDOG=1" not in q.split("\n") for q in quiet)


def test_the_agent_says_ready_status_watchdog_and_stopping(tmp_path: Path) -> None:
    """`oomwatch run` under Type=notify and WatchdogSec=: the datagrams systemd expects."""
    log = tmp_path / "kern.log"
    log.write_text("")
    with listening(tmp_path / "notify") as s:
        agent = AgentProcess(
            tmp_path / "state",
            {
                "NOTIFY_SOCKET": str(tmp_path / "notify"),
                "WATCHDOG_USEC": "1000000",
                "OOMWATCH_SOURCE": "file",
                "OOMWATCH_LOG_FILE": str(log),
            },
        )
        agent.state_dir.mkdir()
        agent.start()
        try:
            first = messages(s, "READY=1")
            ready = first[-1].split("\n")
            assert "STATUS=reading file; 0 deliveries pending" in ready
            assert "WATCHDOG=1" in messages(s, "WATCHDOG=1")[-1].split("\n")
            assert agent.stop() == 0
            assert "STATUS=stopping" in messages(s, "STOPPING=1")[-1].split("\n")
        finally:
            if agent.proc is not None and agent.proc.poll() is None:
                agent.kill9()
