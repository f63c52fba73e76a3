"""Benchmark: `oomwatch parse --format json` against `grep -E -i -B100 'killed process'`.

Generates realistic syslogs (kernel, sshd, cron, systemd, containerd chatter, with
real OOM reports from the test corpus sparsely inside) of 400 MiB and 1 GiB, then
times grep, ripgrep (where installed) and oomwatch on the same file in the same
run, every output written to a file, and prints GB/s, the ratio to grep (the
baseline; target at least 1.00 with every kill found), time per GB at each size
(scaling), and `oomwatch diagnose --source file` on the 1 GiB file as kern.log.

    python bench/parse_speed.py                       # 400 MiB and 1 GiB, 5 runs each
    python bench/parse_speed.py --sizes-mb 200 --runs 3
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
# Syslog-format reports: they fit among syslog lines as they are.
REPORTS = (
    "007-ubuntu1404-icecast-syslog.log",
    "013-aks-ubuntu2204-cgv2-containerd-syslog.log",
    "020-ubuntu1604-i915-order3-virtualbox.log",
    "001-rhel6-haproxy-global.log",
)
_UPTIME = re.compile(r"\[\s*(\d+\.\d+)\]")
KILLS_PER_REPORT = dict.fromkeys(REPORTS, 1)

CHATTER = (
    "{ts} {host} sshd[{pid}]: Accepted publickey for deploy from 10.{a}.{b}.{c} port {port} "
    "ssh2: ED25519 SHA256:Zk{pid}XqVvYx",
    "{ts} {host} sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000)",
    "{ts} {host} CRON[{pid}]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)",
    "{ts} {host} systemd[1]: Started Session {pid} of User deploy.",
    "{ts} {host} systemd[1]: nginx.service: Main process exited, code=exited, status=0/SUCCESS",
    "{ts} {host} kernel: [{up}] IPv6: ADDRCONF(NETDEV_CHANGE): veth{hex}: link becomes ready",
    "{ts} {host} kernel: [{up}] docker0: port 2(veth{hex}) entered forwarding state",
    "{ts} {host} kernel: [{up}] EXT4-fs (sda1): mounted filesystem with ordered data mode",
    '{ts} {host} containerd[{pid}]: time="2024-05-01T10:00:00Z" level=info msg="shim '
    'disconnected" id={hex}{hex}{hex}',
    '{ts} {host} kubelet[{pid}]: I0501 10:00:00.{pid} {pid} kubelet.go:2457] "SyncLoop '
    '(PLEG): event for pod" pod="shop/api-7f9c"',
)


def generate(path: Path, size_mb: int, seed: int = 7) -> int:
    """Write about `size_mb` MiB of syslog with OOM reports in it; return the kills inserted."""
    rng = random.Random(seed)
    reports = [_whole(CORPUS / n) for n in REPORTS]
    target = size_mb << 20
    every = 40 << 20  # a report every ~40 MiB
    written = kills = 0
    next_report = every // 2
    with path.open("w") as f:
        while written < target:
            lines = []
            for _ in range(2000):
                tpl = rng.choice(CHATTER)
                lines.append(
                    tpl.format(
                        ts=f"May  1 10:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
                        host=f"node-{rng.randrange(40)}",
                        pid=rng.randrange(100, 99999),
                        a=rng.randrange(256),
                        b=rng.randrange(256),
                        c=rng.randrange(256),
                        port=rng.randrange(1024, 65535),
                        up=f"{rng.uniform(1, 9e5):.6f}",
                        hex=f"{rng.getrandbits(28):07x}",
                    )
                )
            chunk = "\n".join(lines) + "\n"
            f.write(chunk)
            written += len(chunk)
            if written >= next_report:
                i = rng.randrange(len(reports))
                # a later time for each copy, or it would rightly be read as a duplicate
                shift = rng.uniform(1, 1e5)
                report = _shift_uptimes(reports[i], shift)
                f.write(report if report.endswith("\n") else report + "\n")
                kills += KILLS_PER_REPORT[REPORTS[i]]
                next_report += every
    return kills


def _whole(path: Path) -> str:
    """A corpus report without a next report's first lines that the excerpt cut."""
    text = path.read_text()
    last_kill = text.rfind("Killed process")
    last_header = text.rfind("invoked oom-killer")
    if last_header > last_kill:
        text = text[: text.rfind("\n", 0, last_header) + 1]
    return text


def _shift_uptimes(report: str, shift: float) -> str:
    def later(m: re.Match[str]) -> str:
        return f"[{float(m.group(1)) + shift:14.6f}]"

    return _UPTIME.sub(later, report)


def timed(argv: list[str], runs: int, out: Path) -> float:
    """Median wall time of `runs` runs of argv, its output written to the file `out`.

    The output goes to a file, never to /dev/null: GNU grep stops at its first
    match when its output is /dev/null.
    """
    times = []
    for _ in range(runs):
        with out.open("wb") as sink:
            t0 = time.perf_counter()
            done = subprocess.run(argv, stdout=sink, stderr=subprocess.PIPE, check=False)
            times.append(time.perf_counter() - t0)
        if done.returncode not in (0, 1):  # grep exits 1 when nothing matches
            sys.exit(f"{argv[0]} failed: {done.stderr.decode()[:500]}")
    return statistics.median(times)


def measure(size_mb: int, runs: int, tmp: Path) -> dict[str, float]:
    """One size: generate, then time every tool on the same file in this run."""
    path = tmp / f"syslog-{size_mb}"
    inserted = generate(path, size_mb)
    size = path.stat().st_size
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm cache
    out = tmp / "out"
    one, five, fifteen = os.getloadavg()
    print(f"-- load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs")
    grep_s = timed(["grep", "-E", "-i", "-B100", "killed process", str(path)], runs, out)
    rg_s = None
    if shutil.which("rg"):
        rg_s = timed(["rg", "-i", "-B100", "killed process", str(path)], runs, out)
    ours_s = timed(
        [sys.executable, "-m", "oomwatch", "parse", "--format", "json", str(path)], runs, out
    )
    found = out.read_bytes().count(b'"killer": "kernel"')
    gb = size / 1e9
    print(f"-- {size / 1e6:.0f} MB, {inserted} kills inserted, {found} found by oomwatch")
    _row("grep -E -i -B100 'killed process' > file", grep_s, gb)
    if rg_s is not None:
        _row("rg -i -B100 'killed process' > file", rg_s, gb)
    _row("oomwatch parse --format json > file", ours_s, gb)
    print(f"ratio oomwatch/grep speed: {grep_s / ours_s:.2f} (target >= 1.00)")
    print(f"time per GB: grep {grep_s / gb:.3f} s, oomwatch {ours_s / gb:.3f} s")
    if found != inserted:
        sys.exit("MISMATCH: not every inserted kill was found")
    if size_mb >= 1024:
        logdir = tmp / "log"
        logdir.mkdir(exist_ok=True)
        (logdir / "kern.log").unlink(missing_ok=True)
        path.rename(logdir / "kern.log")
        env = {**os.environ, "OOMWATCH_LOG_DIR": str(logdir)}
        argv = [sys.executable, "-m", "oomwatch", "diagnose", "--source", "file", "--json"]
        _row("oomwatch diagnose --source file (kern.log)", _timed_env(argv, env, runs, out), gb)
    path.unlink(missing_ok=True)
    return {"grep": grep_s / gb, "ours": ours_s / gb}


def _row(what: str, seconds: float, gb: float) -> None:
    print(f"{what:44} {seconds:.3f} s median, {gb / seconds:.2f} GB/s")


def _timed_env(argv: list[str], env: dict[str, str], runs: int, out: Path) -> float:
    times = []
    for _ in range(runs):
        with out.open("wb") as sink:
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=sink, stderr=subprocess.DEVNULL, env=env, check=True)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Generate, time, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes-mb", type=int, nargs="+", default=[400, 1024], help="sizes of the logs (MiB)"
    )
    ap.add_argument("--runs", type=int, default=5, help="runs of each command (median)")
    ap.add_argument("--dir", default=None, help="where to write the logs (default: a temp dir)")
    args = ap.parse_args()
    per_gb = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in args.sizes_mb:
            per_gb[size] = measure(size, args.runs, Path(tmp))
    if len(per_gb) > 1:
        small, big = min(per_gb), max(per_gb)
        print(
            f"scaling (time per GB, {big} MiB / {small} MiB): "
            f"grep {per_gb[big]['grep'] / per_gb[small]['grep']:.2f}, "
            f"oomwatch {per_gb[big]['ours'] / per_gb[small]['ours']:.2f} (1.00 is linear)"
        )


if __name__ == "__main__":
    main()
