"""State faults while the agent runs: a full disk, a database deleted under it.

Root only (memory cgroups, /dev/kmsg, mounting a small tmpfs); skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.agentproc import AgentProcess
from tests.conftest import real_kernel_reason
from tests.servers import Recorder
from tests.test_agent import hook, kill_of, oom_kill

pytestmark = [
    pytest.mark.skipif(real_kernel_reason() is not None, reason=real_kernel_reason() or ""),
    pytest.mark.fault,
]
__all__ = ["hook"]  # the fixture


@contextlib.contextmanager
def small_disk(where: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` (unmounted after, even on failure)."""
    where.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; the file, to remove for space to return."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def _accounted(agent: AgentProcess, kills: int) -> tuple[int, int]:
    """Wait until every kill is stored or waits in memory: (stored, waiting)."""
    deadline = time.monotonic() + 20
    while True:
        done = agent.metric('oomwatch_incidents_total{kind="oom_kill"}')
        waiting = agent.metric("oomwatch_unstored_incidents")
        if done + waiting >= kills or time.monotonic() > deadline:
            return int(done), int(waiting)
        time.sleep(0.05)


def test_a_full_disk_keeps_kills_in_memory_until_space_returns(
    hook: Recorder, tmp_path: Path
) -> None:
    """ENOSPC: kills wait in memory, health says degraded (200), all delivered once after."""
    with small_disk(tmp_path / "state") as disk:
        agent = AgentProcess(disk, {"OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook"})
        agent.log = tmp_path / "agent.log"  # not on the disk this test fills
        agent.start()
        try:
            first = oom_kill("oomwatch-full-0")
            assert hook.wait_for(kill_of(first))
            filler = fill(disk)
            pids = [oom_kill(f"oomwatch-full-{i}") for i in range(1, 4)]
            agent.wait_log("incident(s) kept in memory and retried")
            health = httpx.get(f"{agent.url}/-/healthy", timeout=5)
            assert health.status_code == 200
            assert health.text.startswith("degraded: state database cannot be written")
            # the WAL's free pages can still take a kill or two (sent if their in-flight
            # mark fits too); the rest, from the first that failed on, wait in memory
            stored, waiting = _accounted(agent, len(pids) + 1)
            assert waiting >= 1
            assert stored + waiting == len(pids) + 1
            assert not any(hook.wait_for(kill_of(p), timeout_s=0.2) for p in pids[stored - 1 :])
            filler.unlink()
            agent.wait_log("state database writable again")
            for p in pids:
                assert hook.wait_for(kill_of(p)), p
            assert httpx.get(f"{agent.url}/-/healthy", timeout=5).text == "ok\n"
            agent.settled()
            for p in [first, *pids]:
                # once in effect (docs/delivery.md): a POST whose "sent" mark the full disk
                # refused goes again with the same Idempotency-Key
                keys = {r.headers["Idempotency-Key"] for r in hook.received if kill_of(p)(r)}
                assert len(keys) == 1, p
            assert "Traceback" not in agent.log.read_text()
        finally:
            if agent.proc is not None and agent.proc.poll() is None:
                agent.kill9()


def test_a_database_deleted_while_running_is_written_again(hook: Recorder, tmp_path: Path) -> None:
    """`rm oomwatch.db*`: noticed, written again from the open copy; a restart repeats nothing."""
    state = tmp_path / "state"
    state.mkdir()
    agent = AgentProcess(state, {"OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook"})
    agent.start()
    try:
        first = oom_kill(f"oomwatch-rm-{uuid.uuid4().hex[:4]}")
        assert hook.wait_for(kill_of(first))
        agent.settled()
        db = state / "oomwatch.db"
        for suffix in ("", "-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        agent.wait_log("was deleted while running: written again from the open copy")
        assert db.stat().st_mode & 0o777 == 0o600
        second = oom_kill("oomwatch-rm-2")
        assert hook.wait_for(kill_of(second))
        agent.settled()
        with contextlib.closing(sqlite3.connect(db)) as c:
            stored = {r[0] for r in c.execute("SELECT pid FROM incidents")}
            assert {first, second} <= stored
            assert c.execute("SELECT count(*) FROM cursors").fetchone()[0] >= 1
        agent.stop()
        agent.start()  # the same state: the ring buffer's kills are not sent again
        agent.settled()
        for p in (first, second):
            assert sum(kill_of(p)(r) for r in hook.received) == 1, p
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.kill9()
