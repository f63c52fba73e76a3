"""Benchmark: the agent on a hostile node (root only for parts b and c).

(a) memory: the agent's RSS idle (the baseline), then beside 100 processes whose
    command lines are 1 MB each (8 arguments of 128 KB), after five samples.
    Target: at most 5 MB more.
(b) survival: the agent itself in a 64 MiB memory cgroup, beside 1,000 such
    processes; then real OOM kills. Target: the agent lives and reports each kill.
(c) isolation: kill-to-webhook latency of a healthy receiver, alone (the baseline)
    and beside a black-holed one (accepts connections, never answers), over real
    kills. Target: median within 100 ms of the baseline.

Only processes this script started are ended; the cgroups it made are removed.

    python bench/hostile.py [--only memory|survival|isolation] [--runs 3] [--kills 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.agentproc import AgentProcess  # noqa: E402
from tests.servers import Recorder  # noqa: E402

from bench.agent import _kill_of, kill_latencies, oom_kill  # noqa: E402
from oomwatch.drill.memcg import MIB, memory_cgroup  # noqa: E402

ARGS = ["x" * 131_000] * 8  # 1 MB of command line: MAX_ARG_STRLEN is 128 KiB an argument


@contextlib.contextmanager
def hostile_processes(n: int, cgroup: Path | None = None) -> Iterator[None]:
    """`n` idle shells with 1 MB command lines (in `cgroup` when given), ended by pid after."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(n):
            p = subprocess.Popen(["/bin/sh", "-c", "read x", "sh", *ARGS], stdin=subprocess.PIPE)
            procs.append(p)
            if cgroup is not None:
                (cgroup / "cgroup.procs").write_text(str(p.pid))
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def rss_mb(agent: AgentProcess) -> float:
    """The agent's resident memory now."""
    assert agent.proc is not None
    return float(psutil.Process(agent.proc.pid).memory_info().rss / 1e6)


def memory(procs: int, runs: int) -> None:
    """(a)."""
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            agent = AgentProcess(
                Path(tmp), {"OOMWATCH_JSONL_PATH": f"{tmp}/out.jsonl", "OOMWATCH_CONSOLE": "off"}
            )
            agent.env["OOMWATCH_SAMPLE_INTERVAL"] = "1"
            agent.start()
            try:
                agent.wait_metric("oomwatch_sample_duration_seconds_count", more_by=5)
                idle = rss_mb(agent)
                with hostile_processes(procs):
                    agent.wait_metric("oomwatch_sample_duration_seconds_count", more_by=5)
                    results.append((idle, rss_mb(agent)))
            finally:
                agent.stop()
    idle = statistics.median(r[0] for r in results)
    beside = statistics.median(r[1] for r in results)
    print(f"(a) agent RSS idle (baseline): {idle:.1f} MB, median of {runs}")
    print(f"    beside {procs} processes with 1 MB command lines: {beside:.1f} MB median")
    print(f"    difference {beside - idle:+.1f} MB (target <= +5.0), ratio {beside / idle:.2f}")


def survival(procs: int, kills: int) -> None:
    """(b)."""
    hook = Recorder().start()
    name = f"oomwatch-bench-{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        memory_cgroup(f"{name}-agent", 64 * MIB) as agent_cg,
        memory_cgroup(f"{name}-idle", 4096 * MIB) as idle_cg,  # 1,000 shells: ~2.7 GB
    ):
        agent = AgentProcess(
            Path(tmp), {"OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook", "OOMWATCH_CONSOLE": "off"}
        )
        agent.env["OOMWATCH_SAMPLE_INTERVAL"] = "2"
        agent.start(cgroup=agent_cg)
        assert agent.proc is not None
        try:
            with hostile_processes(procs, idle_cg):
                agent.wait_metric(
                    "oomwatch_sample_duration_seconds_count", more_by=3, timeout_s=120
                )
                reported = 0
                for i in range(kills):
                    pid = oom_kill(f"bench-surv-{i}")
                    reported += bool(hook.wait_for(_kill_of(pid), timeout_s=20))
                alive = agent.proc.poll() is None
                peak = _peak(agent_cg)
                rss = rss_mb(agent) if alive else 0.0
        finally:
            if agent.proc.poll() is None:
                agent.stop()
            hook.stop()
    print(
        f"(b) agent in a 64 MiB cgroup beside {procs} processes with 1 MB command lines: "
        f"{'alive' if alive else 'DEAD'}, {reported} of {kills} real kills reported; "
        f"RSS {rss:.1f} MB, cgroup peak {peak / MIB:.1f} MiB of 64 (ratio {peak / (64 * MIB):.2f})"
    )


def _peak(cg: Path) -> int:
    for name in ("memory.max_usage_in_bytes", "memory.peak"):
        if (cg / name).exists():
            return int((cg / name).read_text())
    return 0


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections and never answers; its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not done.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(srv.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        done.set()
        t.join()
        for c in held:
            c.close()
        srv.close()


def latencies(kills: int, hole: int | None) -> list[float]:
    """Kernel stamp of each kill to the healthy receiver's receipt, in ms."""
    hook = Recorder().start()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "receivers.yaml"
        text = f"receivers:\n  - name: healthy\n    webhook: {{url: '{hook.url}/hook'}}\n"
        if hole is not None:
            text += f"  - name: hole\n    webhook: {{url: 'http://127.0.0.1:{hole}/hook'}}\n"
        config.write_text(text)
        agent = AgentProcess(
            Path(tmp), {"OOMWATCH_CONFIG": str(config), "OOMWATCH_CONSOLE": "off"}
        ).start()
        try:
            out = kill_latencies(hook, kills, "bench-iso", timeout_s=30)
        finally:
            agent.stop()
            hook.stop()
    return out


def isolation(kills: int) -> None:
    """(c)."""
    alone = latencies(kills, None)
    with black_hole() as port:
        beside = latencies(kills, port)
    a, b = statistics.median(alone), statistics.median(beside)
    print(f"(c) healthy receiver alone (baseline): median {a:.1f} ms over {len(alone)} real kills")
    print(
        f"    beside a black-holed receiver: median {b:.1f} ms over {len(beside)} of {kills}, "
        f"max {max(beside):.1f} ms; difference {b - a:+.1f} ms (target <= 100), "
        f"ratio {b / a:.2f}"
    )


def main() -> None:
    """Run the parts asked for, print their figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["memory", "survival", "isolation"])
    ap.add_argument("--procs", type=int, default=0, help="(a) 100, (b) 1000 unless given")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kills", type=int, default=10)
    args = ap.parse_args()
    if args.only in (None, "memory"):
        memory(args.procs or 100, args.runs)
    if args.only in (None, "survival"):
        if os.geteuid() != 0:
            sys.exit("survival needs root (memory cgroups)")
        survival(args.procs or 1000, args.kills)
    if args.only in (None, "isolation"):
        if os.geteuid() != 0:
            sys.exit("isolation needs root (real OOM kills)")
        isolation(args.kills)


if __name__ == "__main__":
    main()
