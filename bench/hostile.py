"""Benchmark: the agent's memory beside processes with hostile (1 MB) command lines.

Starts `oomwatch run` (JSONL receiver, 1 s samples) and reads its RSS when idle,
then with 100 processes whose command lines are 1 MB each (8 arguments of 128 KB),
after the sampler has seen them for five samples. The baseline is the idle agent;
the target is at most 5 MB more. Only processes this script started are ended.

    python bench/hostile.py [--procs 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("oomwatch_sample_duration_seconds_count"):
            return float(line.split()[1])
    return 0.0


def _wait_samples(url: str, more: int) -> None:
    target = _samples(url) + more
    deadline = time.monotonic() + 60
    while _samples(url) < target:
        if time.monotonic() > deadline:
            sys.exit("the agent stopped sampling")
        time.sleep(0.1)


def one_run(procs: int) -> tuple[float, float]:
    """(idle RSS, RSS beside `procs` hostile processes), in MB."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        env = {
            **os.environ,
            "OOMWATCH_STATE_DIR": tmp,
            "OOMWATCH_JSONL_PATH": f"{tmp}/incidents.jsonl",
            "OOMWATCH_LISTEN": f"127.0.0.1:{port}",
            "OOMWATCH_SAMPLE_INTERVAL": "1",
            "OOMWATCH_FIRST_START": "new",
        }
        url = f"http://127.0.0.1:{port}"
        with open(f"{tmp}/agent.log", "wb") as log:
            agent = subprocess.Popen(
                [sys.executable, "-m", "oomwatch", "run"], env=env, stdout=log, stderr=log
            )
        hogs: list[subprocess.Popen[bytes]] = []
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit(Path(f"{tmp}/agent.log").read_text()[-2000:])
                time.sleep(0.1)
            _wait_samples(url, 5)
            idle = psutil.Process(agent.pid).memory_info().rss / 1e6
            args = ["x" * 131_000] * 8
            for _ in range(procs):
                hogs.append(
                    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *args])
                )
            _wait_samples(url, 5)
            hostile = psutil.Process(agent.pid).memory_info().rss / 1e6
            return idle, hostile
        finally:
            for h in hogs:
                h.kill()
                h.wait()
            agent.terminate()
            agent.wait(20)


def main() -> None:
    """Run, print medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.procs) for _ in range(args.runs)]
    idle = statistics.median(r[0] for r in runs)
    hostile = statistics.median(r[1] for r in runs)
    print(f"agent RSS idle (baseline):                  {idle:.1f} MB median of {args.runs}")
    print(f"agent RSS beside {args.procs} 1 MB command lines: {hostile:.1f} MB median")
    print(f"difference: {hostile - idle:+.1f} MB (target <= +5.0), ratio {hostile / idle:.2f}")


if __name__ == "__main__":
    main()
