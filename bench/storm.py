"""Benchmark: an OOM-kill storm through the running agent to local Slack, webhook, PagerDuty.

The servers answer like those services, on 127.0.0.1. Root only.

500 real kills in one memory cgroup (a parent forks workers that the kernel kills one
after another), within 60 s. Prints, per receiver, the messages it got; the kills
counted (sent at once, folded into follow-ups, or reported unseen); the agent's RSS
growth; and the latency from the first kill's kernel stamp to each receiver's first
message. Targets: first message within 50 ms of the first kill, then at most one
message per receiver per group interval, 100% of kills counted, RSS growth <= 10 MB.

    python bench/storm.py                 # 500 kills, group interval 20 s
    python bench/storm.py --kills 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.agentproc import AgentProcess  # noqa: E402
from tests.servers import Received, Recorder  # noqa: E402

from bench.agent import BareReader, kmsg_clock_offset, load  # noqa: E402
from oomwatch.drill.memcg import MIB, memory_cgroup  # noqa: E402

# Forks workers one after another inside the cgroup, `gap` seconds apart; each raises
# its own oom_score_adj so the kernel picks it, not the parent, and touches memory until
# it is killed. The parent prints the pid of each worker the kernel killed.
STORM = r"""
import ctypes, os, sys, time
procs, n, gap, name = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with open(procs, "w") as f:
    f.write(str(os.getpid()))
libc = ctypes.CDLL(None)
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        libc.prctl(15, name.encode(), 0, 0, 0)
        chunks = []
        while True:
            chunks.append(b"x" * (1 << 20))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9:
        print(pid, flush=True)
    if gap:
        time.sleep(gap)
"""


def slack_like(r: Received) -> tuple[int, dict[str, str], bytes]:
    """Answers like Slack's Web API."""
    if r.path.endswith("/chat.postMessage"):
        body = {"ok": True, "channel": "C1", "ts": f"{time.time():.6f}"}
        return 200, {}, json.dumps(body).encode()
    return 200, {}, b'{"ok": true}'


def main() -> None:
    """Run the storm and print the figures."""
    if os.geteuid() != 0:
        sys.exit("bench/storm.py needs root (memory cgroups, /dev/kmsg)")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=500)
    ap.add_argument("--group-interval", type=float, default=20.0)
    args = ap.parse_args()

    print(f"storm: {load()}")
    slack = Recorder(responder=slack_like).start()
    hook = Recorder().start()
    pd = Recorder(responder=lambda _r: (202, {}, b'{"status":"success"}')).start()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "oomwatch.yaml"
        config.write_text(
            "receivers:\n"
            f"  - name: slack\n    slack: {{token: xoxb-bench, channel: '#oom', "
            f"api_url: '{slack.url}/api/'}}\n"
            f"  - name: hook\n    webhook: {{url: '{hook.url}/hook'}}\n"
            f"  - name: pd\n    pagerduty: {{routing_key: bench, url: '{pd.url}/v2/enqueue'}}\n"
        )
        agent = AgentProcess(
            Path(tmp),
            {
                "OOMWATCH_CONFIG": str(config),
                "OOMWATCH_SAMPLE_INTERVAL": "1",
                "OOMWATCH_GROUP_INTERVAL_S": str(args.group_interval),
            },
        ).start()
        assert agent.proc is not None
        proc = psutil.Process(agent.proc.pid)
        time.sleep(2)
        rss0 = proc.memory_info().rss
        offset = kmsg_clock_offset()
        bare = BareReader()
        name = f"oomwatch-bench-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        with memory_cgroup(name, 32 * MIB) as cg:
            import subprocess

            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    STORM,
                    str(cg / "cgroup.procs"),
                    str(args.kills),
                    "0",
                    "storm-worker",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        storm_s = time.monotonic() - started
        killed = len(done.stdout.split())
        bare.stop()
        time.sleep(args.group_interval + 8)  # the follow-ups, and two reconciliation samples
        peak = proc.memory_info().rss
        agent.stop()
    for r in (slack, hook, pd):
        r.stop()

    def payloads(r: Recorder) -> list[dict[str, Any]]:
        return [x.json() for x in r.received]

    hooks = payloads(hook)
    kill_msgs = [p["incident"] for p in hooks if p["incident"].get("kind") == "oom_kill"]
    counted = sum(len(i["followup"]["pids"]) if i.get("followup") else 1 for i in kill_msgs)
    unseen = sum(
        p["incident"]["missing"] for p in hooks if p["incident"].get("kind") == "unseen_kills"
    )
    first_kill = min(
        (i["uptime_s"] for i in kill_msgs if i.get("uptime_s") is not None), default=None
    )
    woken = min(bare.seen.values(), default=None)  # the first kill record's (stamp, woken)
    floor = (woken[1] - (woken[0] - offset)) * 1000 if woken else float("nan")
    print(
        f"storm: {killed} real kills in {storm_s:.1f} s in one cgroup "
        f"(group interval {args.group_interval:.0f} s); the floor, a bare blocked /dev/kmsg "
        f"reader woken by the first kill record: {floor:.1f} ms after its kernel stamp"
    )
    for label, r in (("slack", slack), ("webhook", hook), ("pagerduty", pd)):
        first = min((x.at for x in r.received), default=None)
        lat = (
            (first - (float(first_kill) - offset)) * 1000
            if first is not None and first_kill is not None
            else float("nan")
        )
        kinds = sorted({x.path.rsplit("/", 1)[-1] for x in r.received})
        at = ", ".join(f"{x.at - first:.1f}" for x in r.received) if first else ""
        print(
            f"  {label}: {len(r.received)} requests ({', '.join(kinds)}) at +[{at}] s; first "
            "message "
            f"{lat:.1f} ms after the first kill's kernel stamp (target <= 50, ratio "
            f"{lat / 50:.2f})"
        )
    print(
        f"  kills counted by the webhook: {counted} in messages + {unseen} reported unseen = "
        f"{counted + unseen} of {killed} ({100 * (counted + unseen) / max(killed, 1):.0f}%)"
    )
    print(
        f"  agent RSS: {rss0 / 1e6:.1f} MB before, {peak / 1e6:.1f} MB after; growth "
        f"{(peak - rss0) / 1e6:.1f} MB (target <= 10, ratio {(peak - rss0) / 10e6:.2f})"
    )


if __name__ == "__main__":
    main()
