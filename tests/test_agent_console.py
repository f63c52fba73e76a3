"""What a person sees of `oomwatch run`: a real kill on a pseudo-terminal, piped, and as JSON.

Root only (memory cgroups, /dev/kmsg). Each run has a webhook receiver beside the
console: the console keeps printing incidents, and a line says each delivery went.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agentproc import AgentProcess
from tests.conftest import real_kernel_reason
from tests.servers import Recorder
from tests.test_agent import agents, hook, kill_of, oom_kill

pytestmark = pytest.mark.skipif(real_kernel_reason() is not None, reason=real_kernel_reason() or "")
__all__ = ["agents", "hook"]  # the fixtures
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def wait_text(path: Path, pattern: str, timeout_s: float = 20.0) -> str:
    """Wait until the file matches `pattern` (a regex, multiline); its text, escapes removed."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = ANSI.sub("", path.read_text(errors="replace")).replace("\r\n", "\n")
        if re.search(pattern, text, re.M):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"never shown: {pattern!r}; the screen:\n{text[-3000:]}")
        time.sleep(0.05)


def test_real_kill_on_a_terminal_beside_a_webhook(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """On a tty: a coloured headline with time, host, victim, cgroup; advice once; 'same as'."""
    agent = agents(
        OOMWATCH_WEBHOOK_URL=f"{hook.url}/services/T000/B000/SECRETTOKEN123",
        OOMWATCH_HOSTNAME="node-tty",
        TERM="xterm-256color",
    ).start(terminal=True)
    cgroup = f"oomwatch-test-{uuid.uuid4().hex[:8]}"
    first = oom_kill("oomwatch-tty", name=cgroup)
    hook.wait_for(kill_of(first))
    head = rf"^\d\d:\d\d:\d\d node-tty  OOM kill  oomwatch-tty \(pid {first}\) in cgroup /{cgroup}$"
    screen = wait_text(agent.log, head)
    wait_text(agent.log, r"INFO oomwatch.delivery: sent to webhook in \d+ ms: oomwatch-tty")
    raw = agent.log.read_text(errors="replace")
    assert "\x1b[1;" in raw, "the headline is coloured on a terminal"
    lines = screen.splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(head, line))
    assert lines[at + 1].startswith(f"  oomwatch-tty (pid {first}) was killed because /{cgroup}")
    assert f"limit 32.0 MiB of /{cgroup}" in lines[at + 2]
    assert lines[at + 2].endswith("user root (uid 0)"), "a victim too short-lived to sample"
    assert "what to do:" in screen
    clock = lines[at][:8]

    second = oom_kill("oomwatch-tty", name=cgroup)
    hook.wait_for(kill_of(second))
    screen = wait_text(agent.log, rf"\(pid {second}\) in cgroup /{cgroup}  same as {clock}$")
    explained = [x for x in screen.splitlines() if x.startswith("  oomwatch-tty (pid ")]
    assert len(explained) == 1, "the block (explanation, facts, advice) is shown once per key"
    assert "SECRETTOKEN123" not in raw, "no library logs the webhook's URL"
    assert "httpx" not in raw
    print(screen)  # in the note: what the screen showed
    assert agent.stop() == 0


def test_real_kill_piped_is_one_line_per_incident(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """Not a tty (journald, kubectl logs): one plain line per incident, and a result line."""
    agent = agents(OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook", OOMWATCH_HOSTNAME="node-pipe").start()
    pid = oom_kill("oomwatch-pipe")
    hook.wait_for(kill_of(pid))
    text = wait_text(agent.log, rf"node-pipe OOM kill: oomwatch-pipe \(pid {pid}\)")
    wait_text(agent.log, r"sent to webhook in \d+ ms")
    raw = agent.log.read_text(errors="replace")
    assert "\x1b" not in raw
    (line,) = [x for x in text.splitlines() if f"OOM kill: oomwatch-pipe (pid {pid})" in x]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d node-pipe OOM kill: ", line)
    assert "limit 32.0 MiB of /oomwatch-test-" in line
    assert "; user root (uid 0); " in line
    assert re.search(r"; key [0-9a-f]{20}\]$", line)
    print(line)  # in the note
    assert agent.stop() == 0


def test_json_log_format_makes_every_line_an_object(
    agents: Callable[..., AgentProcess], hook: Recorder
) -> None:
    """OOMWATCH_LOG_FORMAT=json: every line the agent writes is one JSON object."""
    agent = agents(OOMWATCH_WEBHOOK_URL=f"{hook.url}/hook", OOMWATCH_LOG_FORMAT="json").start()
    pid = oom_kill("oomwatch-json")
    hook.wait_for(kill_of(pid))
    wait_text(agent.log, r'"message": "sent to webhook in')
    assert agent.stop() == 0
    records = [json.loads(x) for x in agent.log.read_text().splitlines() if x.strip()]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    (incident,) = [
        r
        for r in records
        if r["logger"] == "oomwatch.incident" and r["incident"]["kind"] == "oom_kill"
    ]
    assert incident["incident"]["incident"]["victim"]["pid"] == pid
