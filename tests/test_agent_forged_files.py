"""kern.log can be written by anyone (`logger`): a kill the kernel did not count is marked.

Root only (a real OOM kill in a 32 MiB memory cgroup, /dev/kmsg for its records).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agentproc import AgentProcess
from tests.conftest import real_kernel_reason
from tests.servers import Recorder
from tests.test_agent import agents, hook, kill_of, oom_kill

pytestmark = [
    pytest.mark.skipif(real_kernel_reason() is not None, reason=real_kernel_reason() or ""),
    pytest.mark.fault,
]
__all__ = ["agents", "hook"]  # the fixtures


def kmsg_after(fd: int) -> list[tuple[float, str]]:
    """The records written since `fd` was positioned: (uptime, text)."""
    out: list[tuple[float, str]] = []
    while True:
        try:
            rec = os.read(fd, 8192).decode(errors="replace")
        except BlockingIOError:
            return out
        head, _, text = rec.partition(";")
        out.append((int(head.split(",")[2]) / 1e6, text.split("\n", 1)[0]))


def as_syslog(uptime: float, text: str) -> str:
    """One kern.log line, as rsyslog writes a kernel record."""
    return f"{time.strftime('%b %e %H:%M:%S')} node1 kernel: [{uptime:12.6f}] {text}\n"


def test_a_forged_kern_log_kill_is_marked_unconfirmed(
    agents: Callable[..., AgentProcess], hook: Recorder, tmp_path: Path
) -> None:
    """The real kill's lines are believed; a `logger`-style copy of a kill is marked and counted."""
    log = tmp_path / "kern.log"
    log.write_text("")
    agent = agents(
        OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook", OOMWATCH_SOURCE="file", OOMWATCH_LOG_FILE=str(log)
    ).start()
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        pid = oom_kill("oomwatch-kern")
        records = kmsg_after(fd)
    finally:
        os.close(fd)
    report = [r for r in records if "oom" in r[1].lower() or "Killed process" in r[1]]
    assert any(f"Killed process {pid} " in t for _, t in report)
    with log.open("a") as f:
        f.writelines(as_syslog(u, t) for u, t in report)
    (got,) = hook.wait_for(kill_of(pid))
    assert got.json()["incident"]["confirmed"] is True
    assert not got.json()["title"].startswith("Unconfirmed")
    # the same kill's lines again, as a local user's `logger` could write them, a
    # moment later and under another pid: the kernel's counter has not moved
    forged_pid = pid + 100000
    later = report[-1][0] + 1.0
    with log.open("a") as f:
        f.writelines(
            as_syslog(later + i * 1e-6, t.replace(str(pid), str(forged_pid)))
            for i, (_, t) in enumerate(report)
        )
    (fake,) = hook.wait_for(kill_of(forged_pid))
    assert fake.json()["incident"]["confirmed"] is False
    assert fake.json()["title"].startswith("Unconfirmed (the kernel did not count this kill): ")
    assert agent.metric("oomwatch_unconfirmed_kills_total") == 1
    agent.wait_log("did not count: reported as unconfirmed")
