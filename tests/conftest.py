"""Shared fixtures: a clean OOMWATCH_* environment, the corpus, and real memory cgroups."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomwatch.drill.memcg import find_memory_controller

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "corpus"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's OOMWATCH_* settings."""
    for key in list(os.environ):
        if key.startswith("OOMWATCH_"):
            monkeypatch.delenv(key)


def real_kernel_reason() -> str | None:
    """Why the real-kernel tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create memory cgroups"
    if find_memory_controller() is None:
        return "no memory cgroup controller (v1 or v2) on this machine"
    if not os.access("/dev/kmsg", os.R_OK):
        return "/dev/kmsg is not readable"
    return None


@pytest.fixture
def cgroup_name() -> str:
    """A unique name for a test's memory cgroup (the cgroup itself is removed by memory_cgroup)."""
    reason = real_kernel_reason()
    if reason:
        pytest.skip(reason)
    return f"oomwatch-test-{uuid.uuid4().hex[:8]}"


JOURNALD = Path("/lib/systemd/systemd-journald")


@pytest.fixture(scope="session")
def journald() -> Iterator[None]:
    """A real systemd-journald (it reads /dev/kmsg itself), started here when none runs.

    This machine has no systemd as PID 1, so the tests start the daemon themselves
    and end it (by its own pid) afterwards.
    """
    import shutil
    import subprocess
    import time

    if os.geteuid() != 0 or not JOURNALD.exists() or shutil.which("journalctl") is None:
        pytest.skip("needs root, systemd-journald and journalctl")
    path = Path("/run/systemd/journal/socket")
    proc = None
    if not _accepts(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [str(JOURNALD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not _accepts(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _accepts(path):
            proc.kill()
            proc.wait()
            pytest.skip("systemd-journald did not start here")
    yield
    if proc is not None:
        proc.terminate()
        proc.wait(10)


def _accepts(path: Path) -> bool:
    """Whether a journald listens on its socket (a stale socket file refuses)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True
