"""The agent's process settings that keep pauses off a kill's path."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import gc, json, sys
import oomwatch.agent
heap = [[i] for i in range(50_000)]  # what start-up leaves alive
before = len(gc.get_objects())
oomwatch.agent.quick_to_answer()
print(json.dumps({
    "before": before,
    "after": len(gc.get_objects()),
    "frozen": gc.get_freeze_count(),
    "switch": sys.getswitchinterval(),
}))
"""


def test_start_up_s_objects_are_out_of_the_collector_s_walk() -> None:
    """After start-up a full collection walks only what came later; threads switch in 0.5 ms.

    The objects the collector tracks are what a full collection visits: frozen, the
    agent's start-up heap is no longer among them (13-19 ms a collection before).
    """
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    got = json.loads(out.stdout)
    assert got["before"] > 50_000
    assert got["frozen"] > 50_000
    assert got["after"] < 1_000, got
    assert got["switch"] == 0.0005
