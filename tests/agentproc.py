"""The agent as a real subprocess (`python -m oomwatch run`), for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int, *, udp: bool = False) -> list[int]:
    """`n` different free ports on 127.0.0.1 (TCP, and UDP too with `udp`).

    Held open together while chosen: `free_port()` twice in a row may give the same
    port, and two servers of one test then collide.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            tcp = socket.socket()
            held.append(tcp)
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if udp:
                dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(dgram)
                try:
                    dgram.bind(("127.0.0.1", port))
                except OSError:
                    continue  # taken for UDP: hold this one too, and pick another
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


class AgentProcess:
    """Starts, kills and restarts `oomwatch run` with a given environment."""

    def __init__(self, state_dir: Path, env: dict[str, str]) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OOMWATCH_STATE_DIR": str(state_dir),
            "OOMWATCH_LISTEN": f"127.0.0.1:{self.port}",
            "OOMWATCH_SAMPLE_INTERVAL": "0.5",
            "OOMWATCH_FIRST_START": "new",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.terminal = False  # started under `script`: the agent is its child
        self.log = state_dir / "agent.log"

    @property
    def url(self) -> str:
        """The agent's HTTP address."""
        return f"http://127.0.0.1:{self.port}"

    def start(
        self, timeout_s: float = 20.0, *, terminal: bool = False, cgroup: Path | None = None
    ) -> AgentProcess:
        """Start and wait until it reads the kernel log (/-/ready).

        With `terminal`, the agent runs on a pseudo-terminal (util-linux `script`), as
        when a person starts it in a shell; the log then holds what the screen showed.
        With `cgroup`, it runs in that cgroup from its first allocation.
        """
        command = [sys.executable, "-m", "oomwatch", "run"]
        if cgroup is not None:
            procs = shlex.quote(str(cgroup / "cgroup.procs"))
            command = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *command]
        self.terminal = terminal
        if terminal:
            inner = "exec " + " ".join(shlex.quote(c) for c in command)
            command = ["script", "--quiet", "--flush", "--return", "--command", inner, "/dev/null"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"agent not ready: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        """SIGKILL: no chance to flush anything."""
        assert self.proc is not None
        import psutil

        if self.terminal:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(self.proc.pid).children():  # the agent
                    child.send_signal(signal.SIGKILL)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        import psutil

        # on a terminal, the agent is the child of `script`, which returns its exit code;
        # otherwise its own children (journalctl) are not the agent
        try:
            me = psutil.Process(self.proc.pid)
            agent = (me.children() or [me]) if self.terminal else [me]
            agent[0].send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:  # it had ended by itself: its exit code says how
            code = self.proc.wait(20)
            print(f"agent had ended with {code}: {self.log.read_text(errors='replace')[-1500:]}")
            return code
        return self.proc.wait(20)

    def settled(self, timeout_s: float = 20.0) -> None:
        """Wait until the outbox holds nothing pending and no follow-up is due to be sent.

        After this, nothing more goes out unless a new incident comes: the fact a
        test checking "sent once, never repeated" waits on.
        """
        settled(self.state_dir / "oomwatch.db", timeout_s)

    def wait_log(self, text: str, count: int = 1, timeout_s: float = 20.0) -> None:
        """Wait until the agent has logged `text` at least `count` times."""
        deadline = time.monotonic() + timeout_s
        while self.log.read_text(errors="replace").count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the agent never logged {text!r} ({count}x)")
            time.sleep(0.05)

    def wait_cursor(self, source: str = "kmsg", timeout_s: float = 20.0) -> str:
        """Wait until the agent has saved a cursor for `source`; its value."""
        db = self.state_dir / "oomwatch.db"
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.closing(sqlite3.connect(db, timeout=5)) as c:
                row = c.execute("SELECT value FROM cursors WHERE source = ?", (source,)).fetchone()
            if row is not None:
                return str(row[0])
            if time.monotonic() > deadline:
                raise AssertionError(f"no {source} cursor saved")
            time.sleep(0.05)

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (0 when it has none yet)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_metric(
        self, name: str, *, more_by: float = 0, at_least: float | None = None, timeout_s: float = 20
    ) -> None:
        """Wait until a metric grows by `more_by` from now, or reaches `at_least`."""
        target = at_least if at_least is not None else self.metric(name) + more_by
        deadline = time.monotonic() + timeout_s
        while self.metric(name) < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} never reached {target}")
            time.sleep(0.05)

    def metrics(self) -> str:
        """The /metrics text."""
        return httpx.get(f"{self.url}/metrics", timeout=5).text


def settled(db: Path, timeout_s: float = 20.0) -> None:
    """Wait until the agent's outbox in `db` holds nothing pending and no follow-up is due."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as c:
            pending = c.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            follow = c.execute("SELECT COUNT(*) FROM groups WHERE followup_at IS NOT NULL")
            busy = pending.fetchone()[0] + follow.fetchone()[0]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{busy} deliveries still pending after {timeout_s} s")
        time.sleep(0.05)
