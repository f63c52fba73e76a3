"""The agent as a real subprocess (`python -m oomwatch run`), for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
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
        self.log = state_dir / "agent.log"

    @property
    def url(self) -> str:
        """The agent's HTTP address."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> AgentProcess:
        """Start and wait until it reads the kernel log (/-/ready)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oomwatch", "run"], env=self.env, stdout=log, stderr=log
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
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def metrics(self) -> str:
        """The /metrics text."""
        return httpx.get(f"{self.url}/metrics", timeout=5).text
