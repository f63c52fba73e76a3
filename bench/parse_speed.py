"""Benchmark: `oomwatch parse --format json` against `grep -E -i -B100 'killed process'`.

Generates a realistic syslog (kernel, sshd, cron, systemd, containerd chatter, with
real OOM reports from the test corpus sparsely inside), then times both commands
on the same file in the same run and prints MB/s of each and the ratio. The
baseline is grep; the target is a ratio of at least 0.5 (half grep's speed) while
producing structured records. It also checks that every inserted kill is found.

    python bench/parse_speed.py              # 1 GiB file
    python bench/parse_speed.py --size-mb 200 --runs 3
"""

from __future__ import annotations

import argparse
import random
import re
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
    reports = [(CORPUS / n).read_text() for n in REPORTS]
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


def _shift_uptimes(report: str, shift: float) -> str:
    def later(m: re.Match[str]) -> str:
        return f"[{float(m.group(1)) + shift:14.6f}]"

    return _UPTIME.sub(later, report)


def timed(argv: list[str], runs: int) -> tuple[float, bytes]:
    """Median wall time of `runs` runs of argv (output kept from the last)."""
    times = []
    out = b""
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
        out = done.stdout
        if done.returncode not in (0, 1):  # grep exits 1 when nothing matches
            sys.exit(f"{argv[0]} failed: {done.stderr.decode()[:500]}")
    return statistics.median(times), out


def main() -> None:
    """Generate, time, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="size of the generated log (MiB)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    ap.add_argument("--dir", default=None, help="where to write the log (default: a temp dir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "syslog"
        inserted = generate(path, args.size_mb)
        size = path.stat().st_size
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm cache
        grep_s, _ = timed(["grep", "-E", "-i", "-B100", "killed process", str(path)], args.runs)
        ours_s, out = timed(
            [sys.executable, "-m", "oomwatch", "parse", "--format", "json", str(path)], args.runs
        )
    found = out.count(b'"killer": "kernel"')
    mb = size / 1e6
    print(f"file: {mb:.0f} MB, {inserted} kills inserted, {found} found")
    print(f"grep -E -i -B100 'killed process': {grep_s:.3f} s median, {mb / grep_s:.0f} MB/s")
    print(f"oomwatch parse --format json:      {ours_s:.3f} s median, {mb / ours_s:.0f} MB/s")
    print(f"ratio oomwatch/grep speed: {grep_s / ours_s:.2f} (target >= 0.50)")
    if found != inserted:
        sys.exit("MISMATCH: not every inserted kill was found")


if __name__ == "__main__":
    main()
