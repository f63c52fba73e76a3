"""Shared fixtures: a clean OOMWATCH_* environment, the corpus, and real memory cgroups."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from oomwatch.memcg import find_memory_controller

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
