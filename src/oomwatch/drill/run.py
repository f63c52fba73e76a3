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


def run_drill(
    agent_url: str, timeout_s: float = 30.0, limit_mib: int = 32, *, page: bool = False
) -> int:
    """Kill a hog in a fresh memory cgroup, wait for the incident and each receiver's delivery.

    The incident is marked a drill (severity info); receivers that wake people
    (PagerDuty, Opsgenie) get it only with `page`. Exit 1 when a receiver failed.
    """
    from oomwatch.incidents.builder import DRILL_CGROUP, DRILL_PAGES

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
        name = f"{DRILL_PAGES if page else DRILL_CGROUP}{uuid.uuid4().hex[:8]}"
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
        deliveries = _wait_delivered(http, base, str(found["id"]), timeout_s)
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
    return _report(deliveries, float(found["detected_at"]), page)


def _report(deliveries: list[dict[str, Any]], detected_at: float, page: bool) -> int:
    """One line per receiver; 1 when one failed or is still trying."""
    bad = False
    if not deliveries:
        print("  no receiver was routed this incident")
    for d in deliveries:
        name, state = terminal(str(d["receiver"])), d["state"]
        if state == "sent":
            ms = (float(d["done_at"]) - detected_at) * 1000
            print(f"  {name}: sent in {ms:.0f} ms")
        elif state in ("folded", "followed"):
            print(f"  {name}: held for a follow-up (an earlier kill has the same key)")
        elif state == "pending":
            bad = True
            why = f": {terminal(str(d['error']))}" if d["error"] else ""
            print(f"  {name}: NOT YET SENT after {d['attempts']} attempt(s){why}")
        else:
            bad = True
            print(f"  {name}: FAILED ({state}): {terminal(str(d['error'] or ''))}")
    if not page:
        print("  (receivers that page people, PagerDuty and Opsgenie, skip drills: --page)")
    return 1 if bad else 0


def _wait_delivered(
    http: httpx.Client, base: str, incident: str, timeout_s: float
) -> list[dict[str, Any]]:
    """The incident's deliveries once none is pending, or as they are at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows: list[dict[str, Any]] = http.get(
            f"{base}/api/v1/deliveries", params={"incident": incident}
        ).json()
        if all(r["state"] != "pending" for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


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
