"""`oomwatch drill`: prove the pipeline end to end with a real OOM kill on this machine."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import httpx

from oomwatch.drill.memcg import MIB, find_memory_controller, memory_cgroup, start_hog
from oomwatch.errors import OomwatchError, UsageError
from oomwatch.render.escape import terminal

DRILL_COMM = "oomwatch-drill"


def run_drill(agent_url: str, timeout_s: float = 30.0, limit_mib: int = 32) -> int:
    """Kill a hog in a fresh memory cgroup and wait for the running agent's incident."""
    if os.geteuid() != 0:
        raise UsageError("drill needs root: it creates a memory cgroup")
    if find_memory_controller() is None:
        raise UsageError("drill needs a memory cgroup controller (v1 or v2); this machine has none")
    base = agent_url.rstrip("/")
    with httpx.Client(timeout=5.0) as http:
        try:
            http.get(f"{base}/-/ready").raise_for_status()
        except httpx.HTTPError as e:
            raise OomwatchError(
                f"no ready agent at {base} ({type(e).__name__}): start "
                "`oomwatch run` first, or pass --agent"
            ) from e
        name = f"oomwatch-drill-{uuid.uuid4().hex[:8]}"
        started = time.time()
        with memory_cgroup(name, limit_mib * MIB) as cg, start_hog(cg, comm=DRILL_COMM) as hog:
            hog.go()
            code = hog.wait()
        # kmsg stamps are CLOCK_MONOTONIC; this turns them into wall time to the millisecond
        mono_to_wall = time.time() - time.monotonic()
        if code != -9:
            raise OomwatchError(f"the drill process was not OOM-killed (exit code {code})")
        print(
            f"The kernel OOM-killed {DRILL_COMM} (pid {hog.pid}) in memory cgroup /{name} "
            f"(limit {limit_mib} MiB). Waiting for the agent..."
        )
        found = _wait_for(http, base, hog.pid, started, timeout_s)
    if found is None:
        print(f"FAILED: no incident for pid {hog.pid} within {timeout_s:.0f} s")
        return 1
    inc = found["incident"]
    uptime = inc.get("uptime_s")
    latency = (found["detected_at"] - (mono_to_wall + uptime)) if uptime is not None else None
    print(f"OK: {terminal(found['title'])}")
    print(f"  incident {found['id']} key {found['key']}")
    if latency is not None:
        print(
            f"  latency from the kernel's kill record to the stored incident: "
            f"{latency * 1000:.1f} ms"
        )
    return 0


def _wait_for(
    http: httpx.Client, base: str, pid: int, since: float, timeout_s: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        resp = http.get(f"{base}/api/v1/incidents", params={"since": str(since - 1)})
        for row in resp.json():
            if (
                row["kind"] == "oom_kill"
                and (row["incident"].get("victim") or {}).get("pid") == pid
            ):
                return dict(row)
        time.sleep(0.05)
    return None
