"""Crash torture: a storm of real OOM kills while the agent is kill -9ed at random moments.

Root only. A storm of `--kills` real OOM kills in one 32 MiB memory cgroup, spread
over about `--kills / 3` seconds, while the agent is SIGKILLed at `--crashes`
random moments and restarted each time. Three receivers on 127.0.0.1, each slow
enough that a crash often lands while a POST is open: a Slack-like Web API (with
message metadata and conversations.history/replies), a webhook and a PagerDuty-like
Events API. Prints per receiver the kills expected, delivered, missing and
duplicated, and the repeats that carried a different key (the webhook's
Idempotency-Key, PagerDuty's dedup_key). Targets: 0 missing everywhere,
0 duplicates at the Slack-like server, 0 repeats with a new key.

    python bench/crash.py                      # 120 kills, 20 crashes
    python bench/crash.py --kills 30 --crashes 4 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.agentproc import AgentProcess  # noqa: E402
from tests.servers import Received, Recorder, SlackLike  # noqa: E402

from bench.storm import STORM  # noqa: E402
from oomwatch.drill.memcg import MIB, memory_cgroup  # noqa: E402


class Open:
    """Counts the requests a server is still answering (a crash now cuts a POST off)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.now -= 1


@dataclass
class Tally:
    """What one receiver showed: the kills it told of, per message."""

    name: str
    messages: list[tuple[str, list[int]]] = field(default_factory=list)  # (key, pids)

    def repeats(self, expected: set[int], most: int = 5) -> list[str]:
        """The first `most` kills told of under two keys: pid and the keys."""
        keys: dict[int, list[str]] = defaultdict(list)
        for key, pids in self.messages:
            for p in pids:
                if p in expected:
                    keys[p].append(key)
        twice = [(p, k) for p, k in keys.items() if len(set(k)) > 1]
        return [f"{self.name} pid {p}: {', '.join(k)}" for p, k in twice[:most]]

    def line(self, expected: set[int]) -> dict[str, int]:
        """expected, delivered, missing, duplicated, repeats with a new key."""
        seen: Counter[int] = Counter()
        keys: dict[int, set[str]] = defaultdict(set)
        for key, pids in self.messages:
            for p in pids:
                if p in expected:
                    seen[p] += 1
                    keys[p].add(key)
        return {
            "expected": len(expected),
            "delivered": len(seen),
            "missing": len(expected - set(seen)),
            "duplicated": sum(n - 1 for n in seen.values()),
            "new_key": sum(len(k) - 1 for k in keys.values()),
        }


@dataclass
class Run:
    """The figures of one torture run."""

    kills: int
    crashes: int
    during_post: int
    tallies: dict[str, dict[str, int]]
    slack_keys_twice: int
    seconds: float
    repeats: list[str] = field(default_factory=list)  # kills told of under two keys


def _slow(delay: float, answer: tuple[int, dict[str, str], bytes], busy: Open) -> Any:
    def respond(_r: Received) -> tuple[int, dict[str, str], bytes]:
        with busy:
            time.sleep(delay)
        return answer

    return respond


def _slack_tally(api: SlackLike) -> Tally:
    t = Tally("slack")
    for m in api.posts():
        payload = m.get("metadata", {}).get("event_payload", {})
        t.messages.append((payload.get("delivery_key", ""), [int(p) for p in payload["pids"]]))
    return t


def _hook_tally(hook: Recorder) -> Tally:
    t = Tally("webhook")
    for r in hook.received:
        inc = r.json()["incident"]
        if inc.get("kind") != "oom_kill":
            continue
        f = inc.get("followup")
        pids = [int(p) for p in f["pids"]] if f else [int(inc["victim"]["pid"])]
        t.messages.append((r.headers["Idempotency-Key"], pids))
    return t


def _pd_tally(pd: Recorder) -> Tally:
    t = Tally("pagerduty")
    for r in pd.received:
        ev = r.json()
        if ev.get("event_action") == "trigger" and ev["payload"]["class"] == "oom_kill":
            t.messages.append((ev["dedup_key"], ev["payload"]["custom_details"]["pids"]))
    return t


def run(kills: int, crashes: int, seed: int, keep: Path | None = None) -> Run:
    """Storm, crash, restart; then tally what each receiver got."""
    rng = random.Random(seed)
    busy = Open()
    api = SlackLike()
    api.post_delay = 0.15
    slack = Recorder(responder=_slack_busy(api, busy)).start()
    hook = Recorder(responder=_slow(0.2, (200, {}, b"ok"), busy)).start()
    accepted: tuple[int, dict[str, str], bytes] = (
        202,
        {},
        b'{"status":"success","message":"Event processed"}',
    )
    pd = Recorder(responder=_slow(0.1, accepted, busy)).start()
    gap = 0.3
    started = time.monotonic()
    during = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state"
            state.mkdir()
            config = Path(tmp) / "oomwatch.yaml"
            config.write_text(
                "receivers:\n"
                f"  - name: slack\n    slack: {{token: xoxb-bench, channel: {SlackLike.CHANNEL},"
                f" api_url: '{slack.url}/api/'}}\n"
                f"  - name: hook\n    webhook: {{url: '{hook.url}/hook'}}\n"
                f"  - name: pd\n    pagerduty: {{routing_key: bench, url: '{pd.url}/v2/enqueue'}}\n"
            )
            env = {"OOMWATCH_CONFIG": str(config), "OOMWATCH_GROUP_INTERVAL_S": "2"}
            agent = AgentProcess(state, env).start()
            name = f"oomwatch-crash-{uuid.uuid4().hex[:8]}"
            with memory_cgroup(name, 32 * MIB) as cg:
                storm = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        STORM,
                        str(cg / "cgroup.procs"),
                        str(kills),
                        str(gap),
                        "crash-worker",
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                span = kills * (gap + 0.05)
                for at in sorted(rng.uniform(0.5, span) for _ in range(crashes)):
                    wait = at - (time.monotonic() - started)
                    if wait > 0:
                        time.sleep(wait)  # a random moment is the point: no fact to wait on
                    during += busy.now > 0
                    agent.kill9()
                    agent = AgentProcess(state, env).start()
                out, _ = storm.communicate(timeout=kills * 5)
            expected = {int(x) for x in out.split()}
            agent.settled(timeout_s=120)
            agent.stop()
            if keep is not None:
                import shutil

                shutil.copytree(state, keep, dirs_exist_ok=True)
                (keep / "slack.json").write_text(json.dumps(api.posts()))
    finally:
        for s in (slack, hook, pd):
            s.stop()
    shown = (_slack_tally(api), _hook_tally(hook), _pd_tally(pd))
    tallies = {t.name: t.line(expected) for t in shown}
    keys = Counter(api.keys())
    return Run(
        kills=len(expected),
        crashes=crashes,
        during_post=during,
        tallies=tallies,
        slack_keys_twice=sum(n - 1 for n in keys.values() if n > 1),
        seconds=time.monotonic() - started,
        repeats=[line for t in shown for line in t.repeats(expected)],
    )


def _slack_busy(api: SlackLike, busy: Open) -> Any:
    def respond(r: Received) -> tuple[int, dict[str, str], bytes]:
        with busy:
            return api(r)

    return respond


def report(r: Run) -> str:
    """The figures, one receiver a line, with the targets."""
    lines = [
        f"crash torture: {r.kills} real OOM kills, {r.crashes} kill -9s of the agent "
        f"({r.during_post} while a receiver was still answering a POST), {r.seconds:.0f} s",
        f"  {'receiver':10} {'expected':>8} {'delivered':>9} {'missing':>7} {'duplicated':>10} "
        f"{'new key':>7}",
    ]
    for name, t in r.tallies.items():
        lines.append(
            f"  {name:10} {t['expected']:8} {t['delivered']:9} {t['missing']:7} "
            f"{t['duplicated']:10} {t['new_key']:7}"
        )
    lines.append(f"  slack messages posted twice (same delivery key): {r.slack_keys_twice}")
    lines += [f"  told of under two keys: {line}" for line in r.repeats]
    ok = (
        all(t["missing"] == 0 for t in r.tallies.values())
        and r.tallies["slack"]["duplicated"] == 0
        and r.slack_keys_twice == 0
        and r.tallies["webhook"]["new_key"] == 0
    )
    lines.append(
        "  targets (0 missing, 0 Slack duplicates, 0 webhook repeats with a new key): "
        + ("met" if ok else "NOT met")
    )
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run, print."""
    if os.geteuid() != 0:
        sys.exit("bench/crash.py needs root (memory cgroups, /dev/kmsg)")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=120)
    ap.add_argument("--crashes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", type=Path, help="copy the state and what Slack got here")
    args = ap.parse_args()
    print(f"seed {args.seed}")
    r = run(args.kills, args.crashes, args.seed, args.keep)
    print(report(r))
    print(json.dumps({"kills": r.kills, "tallies": r.tallies}, sort_keys=True))


if __name__ == "__main__":
    main()
