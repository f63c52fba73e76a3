"""Benchmark of `oomwatch run` on this machine's real kernel (root only).

(a) latency: from the kernel's own timestamp of each kill record to a bare
    /dev/kmsg reader and to the webhook receiving the incident, over N real OOM
    kills (median, p99), and what the agent adds to the bare reader; the
    benchmark itself sleeps through each kill (it reaps the victim and removes its
    cgroup once the webhook has it) and the bare reader prints later, so neither
    works on the same two CPUs while the agent does;
(b) footprint: RSS and CPU of the agent over a period with 1,000 extra idle
    processes, at the default sample interval;
(c) flood: 50,000 unrelated kernel log records per second for 10 s with real kills
    inside: kills reported (or counted as missed), records lost, CPU;
(d) sampling: CPU of one memory sample beside 5,000 extra processes;
(e) incidents: RSS idle, then after 20,000 incidents (kill reports appended to a
    followed kern.log, each in a cgroup of its own) were stored and delivered.

Targets: the latency the agent adds to a bare /dev/kmsg reader, median <= 3 ms and
p99 <= 10 ms; RSS <= 45 MB (printed beside the floor of the dependencies alone); CPU
<= 0.5% of one core while idle; in the flood, every kill reported, no record lost,
CPU <= 30%; sampling <= 0.5% at 5,000 processes; RSS after 20,000 incidents within
+10 MB of idle.

    python bench/agent.py                       # every phase, a 5-minute footprint run
    python bench/agent.py --only latency --kills 20
    python bench/agent.py --only footprint --seconds 60
    python bench/agent.py --only incidents --incidents 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.agentproc import AgentProcess  # noqa: E402
from tests.servers import Received, Recorder  # noqa: E402

from oomwatch.drill.memcg import MIB, memory_cgroup, start_hog  # noqa: E402

T = TypeVar("T")


def kmsg_clock_offset() -> float:
    """kmsg stamp minus time.monotonic(), measured with one record written and read back."""
    fd = os.open("/dev/kmsg", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        marker = f"oomwatch-bench clock {uuid.uuid4().hex}".encode()
        before = time.monotonic()
        os.write(fd, b"<6>" + marker + b"\n")
        after = time.monotonic()
        while True:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            if marker in rec:
                stamp = int(rec.split(b",")[2]) / 1e6
                return stamp - (before + after) / 2
    finally:
        os.close(fd)


@contextmanager
def oom_killing(comm: str) -> Iterator[int]:
    """A real OOM kill under way in a fresh 32 MiB cgroup: the victim's pid.

    The victim is reaped and its cgroup removed when the block ends, so a benchmark can
    sleep on what it measures while the kill is delivered instead of working beside it.
    """
    name = f"oomwatch-bench-{uuid.uuid4().hex[:8]}"
    with memory_cgroup(name, 32 * MIB) as cg, start_hog(cg, comm=comm) as hog:
        hog.go()
        yield hog.pid
        hog.wait()


def oom_kill(comm: str) -> int:
    """One real OOM kill in a fresh 32 MiB cgroup, over when this returns; the victim's pid."""
    with oom_killing(comm) as pid:
        pass
    return pid


BARE_READER = r"""
import os, queue, sys, threading, time
# each kill is told 50 ms after it woke this reader: printing at once would wake the
# benchmark's process while the agent is still at work on the same two CPUs
told = queue.SimpleQueue()
def tell():
    while True:
        pid, stamp, at = told.get()
        time.sleep(max(0.0, at + 0.05 - time.monotonic()))
        print(pid, stamp, at, flush=True)
threading.Thread(target=tell, daemon=True).start()
fd = os.open("/dev/kmsg", os.O_RDONLY)
os.lseek(fd, 0, os.SEEK_END)
print("ready", flush=True)
while True:
    try:
        rec = os.read(fd, 16384)
    except BrokenPipeError:
        continue
    at = time.monotonic()
    head, _, text = rec.partition(b";")
    if b"Killed process " in text:  # "Out of memory: ...", "Memory cgroup out of memory: ..."
        pid = text.split(b"Killed process ", 1)[1].split(b" ", 1)[0].decode()
        told.put((pid, int(head.split(b",")[2]), at))
"""


BARE_RECEIVER = r"""
import json, re, socket, sys, threading, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)
LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            m = LENGTH.search(buf, 0, end)
            need = end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) >= need:
                at = time.monotonic()  # the whole request is here
                body, buf = buf[end + 4 : need], buf[need:]
                conn.sendall(OK)
                try:
                    pid = json.loads(body)["incident"]["victim"]["pid"]
                except (ValueError, KeyError, TypeError):
                    pid = None
                print(pid, at, flush=True)
                continue
        data = conn.recv(1 << 20)
        if not data:
            conn.close()
            return
        buf += data

while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


class Witness(Generic[T]):
    """A process of ours that prints a line for each kill it sees: what it saw, by victim pid."""

    def __init__(self, program: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.first = self.proc.stdout.readline().strip()  # it is ready: "ready", a port
        self.seen: dict[int, T] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def parse(self, line: str) -> tuple[int, T] | None:
        """The victim pid and what was seen of it, from one printed line."""
        raise NotImplementedError

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            got = self.parse(line)
            if got is not None:
                with self.cond:
                    self.seen[got[0]] = got[1]
                    self.cond.notify_all()

    def wait(self, pid: int, timeout_s: float) -> T | None:
        """What was seen of `pid`'s kill, waiting up to `timeout_s` for it."""
        with self.cond:
            self.cond.wait_for(lambda: pid in self.seen, timeout=timeout_s)
            return self.seen.get(pid)

    def stop(self) -> None:
        """End the process (ours, by its pid)."""
        self.proc.kill()
        self.proc.wait()


class BareReceiver(Witness[float]):
    """A webhook receiver in a process of its own, noting when each request has arrived whole.

    The agent's latency ends when its POST is on the receiver's side of the socket: a
    receiver that parses headers in Python under the benchmark's other threads would
    add its own time to the agent's (the `--receiver recorder` choice measures that).
    """

    def __init__(self) -> None:
        super().__init__(BARE_RECEIVER)
        self.url = f"http://127.0.0.1:{int(self.first)}"

    def parse(self, line: str) -> tuple[int, float] | None:
        """The victim pid and when its incident arrived (time.monotonic())."""
        pid, at = line.split()
        return None if pid == "None" else (int(pid), float(at))


class BareReader(Witness[tuple[float, float]]):
    """The floor: a process blocked in read() on /dev/kmsg, noting when each kill wakes it."""

    def __init__(self) -> None:
        super().__init__(BARE_READER)
        assert self.first == "ready"

    def parse(self, line: str) -> tuple[int, tuple[float, float]] | None:
        """The victim pid, its kill record's kernel stamp (s) and when the reader woke."""
        pid, stamp_us, at = line.split()
        return int(pid), (int(stamp_us) / 1e6, float(at))


def _kill_of(pid: int) -> Callable[[Received], bool]:
    def match(r: Received) -> bool:
        return bool(r.json()["incident"].get("victim", {}).get("pid") == pid)

    return match


def kill_latencies(
    hook: Recorder, kills: int, comm: str, *, timeout_s: float, gap_s: float = 0.0
) -> list[float]:
    """Real kills, `gap_s` apart: from the kernel's stamp of each to `hook`'s receipt, in ms."""
    offset = kmsg_clock_offset()
    out = []
    for i in range(kills):
        pid = oom_kill(f"{comm}-{i}")
        got = hook.wait_for(_kill_of(pid), timeout_s=timeout_s)
        if not got:
            print(f"    kill {i}: NOT RECEIVED")
            continue
        kernel_at = got[0].json()["incident"]["uptime_s"] - offset  # time.monotonic() terms
        out.append((got[0].at - kernel_at) * 1000)
        time.sleep(gap_s)
    return out


def load() -> str:
    """The load average, printed before each phase (a busy machine slows every figure)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def latency(kills: int, restart_every: int, receiver: str) -> None:
    """(a): kernel stamp of each kill record to a bare reader, and to the webhook's receipt.

    The agent is restarted every `restart_every` kills, so first kills after a start
    are among those measured. `receiver` "bare" stamps a request when its last byte is
    read, in a process of its own; "recorder" is the tests' threaded http.server.
    """
    print(f"(a) {load()}; receiver: {receiver}")
    hook: Recorder | BareReceiver = (
        BareReceiver() if receiver == "bare" else Recorder(keep_alive=True).start()
    )
    bare = BareReader()
    offset = kmsg_clock_offset()
    floor: list[float] = []
    total: list[float] = []
    added: list[float] = []
    first: list[float] = []
    missed = 0
    env = {
        "OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook",
        "OOMWATCH_CONSOLE": "false",
        "OOMWATCH_SAMPLE_INTERVAL": "10",
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            agent: AgentProcess | None = None
            for i in range(kills):
                if i % restart_every == 0:
                    if agent is not None:
                        agent.stop()
                    agent = AgentProcess(Path(tmp), env).start()
                with oom_killing(f"bench-lat-{i}") as pid:
                    if isinstance(hook, BareReceiver):
                        at = hook.wait(pid, timeout_s=10)
                    else:
                        got = hook.wait_for(_kill_of(pid), timeout_s=10)
                        at = got[0].at if got else None
                    woke = bare.wait(pid, timeout_s=10)
                if at is None or woke is None:
                    missed += 1
                    print(f"    kill {i}: NOT RECEIVED")
                    continue
                stamp = woke[0] - offset  # in time.monotonic() terms
                floor.append((woke[1] - stamp) * 1000)
                total.append((at - stamp) * 1000)
                added.append((at - woke[1]) * 1000)
                if i % restart_every == 0:
                    first.append(added[-1])
                time.sleep(0.2)
            if agent is not None:
                agent.stop()
    finally:
        bare.stop()
        hook.stop()
    med = statistics.median
    print(
        f"(a) {len(total)} real kills ({missed} missed), each from the kernel's stamp of its "
        f"kill record, in ms:\n"
        f"    floor (a bare blocked /dev/kmsg reader woken): median {med(floor):.2f}, "
        f"p99 {pct(floor, 0.99):.2f}\n"
        f"    agent (webhook received):                      median {med(total):.2f}, "
        f"p99 {pct(total, 0.99):.2f}\n"
        f"    added by the agent (webhook - bare reader):    median {med(added):.2f}, "
        f"p99 {pct(added, 0.99):.2f}, max {max(added):.2f} (targets 3 and 10: ratio "
        f"{med(added) / 3:.2f} and {pct(added, 0.99) / 10:.2f})\n"
        f"    first kill after each of {len(first)} starts, added: "
        + ", ".join(f"{x:.2f}" for x in first)
    )


@contextmanager
def idle_processes(n: int) -> Iterator[None]:
    """N sleeping processes of our own, ended by pid afterwards."""
    procs = [subprocess.Popen(["sleep", "3600"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


DEPENDENCIES_ONLY = r"""
import sys
for name in ("trio", "h2"):  # as the agent keeps them out
    sys.modules.setdefault(name, None)
import asyncio, ctypes, gc, http.server, sqlite3, ssl, tempfile, threading
import httpx, prometheus_client, psutil
import anyio._backends._asyncio, anyio.lowlevel, anyio.streams.memory, anyio.to_thread

ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # one malloc arena, as the agent sets
db = sqlite3.connect(tempfile.mkdtemp() + "/db")
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t (a)")
client = httpx.AsyncClient(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
registry = prometheus_client.CollectorRegistry()
prometheus_client.Counter("kills", "kills", registry=registry).inc()
prometheus_client.generate_latest(registry)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
psutil.virtual_memory()
list(psutil.process_iter(["pid", "name"]))


async def main():
    await asyncio.to_thread(psutil.cpu_percent)
    await asyncio.sleep(2)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(psutil.Process().memory_info().rss, flush=True)


asyncio.run(main())
"""


CHECK_PEAK = r"""
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run([sys.executable, "-P", "-m", "oomwatch.configchild"], stdin=subprocess.DEVNULL,
               stdout=subprocess.DEVNULL, check=True)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def check_peak(env: dict[str, str]) -> tuple[float, float]:
    """Peak RSS in MB and wall time in s of the child that checks the settings and receivers."""
    out = subprocess.run(
        [sys.executable, "-c", CHECK_PEAK], capture_output=True, text=True, check=True, env=env
    )
    wall, kib = out.stdout.split()[-2:]
    return int(kib) * 1024 / 1e6, float(wall)


def dependencies_rss() -> float:
    """RSS in MB of a process that uses the agent's dependencies as it does, and nothing else."""
    out = subprocess.run(
        [sys.executable, "-c", DEPENDENCIES_ONLY], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1]) / 1e6


def footprint(seconds: float) -> None:
    """(b): RSS and CPU with a webhook and 1,000 idle processes at the default 10 s interval.

    The floor, measured in the same run: a process that imports and uses the agent's
    dependencies (asyncio, sqlite3, httpx, prometheus-client, psutil, an HTTP server
    thread) as the agent does, and none of oomwatch. pydantic-settings is not in it:
    the agent checks its settings in a child process, whose peak is printed too.
    """
    print(f"(b) {load()}")
    floor = statistics.median(dependencies_rss() for _ in range(3))
    hook = Recorder(keep_alive=True).start()
    with idle_processes(1000), tempfile.TemporaryDirectory() as tmp:
        agent = AgentProcess(
            Path(tmp),
            {
                "OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook",
                "OOMWATCH_CONSOLE": "false",
                "OOMWATCH_SAMPLE_INTERVAL": "10",
            },
        ).start()
        try:
            assert agent.proc is not None
            checks = [check_peak(agent.env) for _ in range(3)]
            p = psutil.Process(agent.proc.pid)
            time.sleep(15)  # past start-up and the first samples
            c0 = p.cpu_times()
            t0 = time.monotonic()
            peak = 0
            while time.monotonic() - t0 < seconds:
                peak = max(peak, p.memory_info().rss)
                time.sleep(1)
            c1 = p.cpu_times()
            wall = time.monotonic() - t0
            cpu = (c1.user + c1.system - c0.user - c0.system) / wall * 100
            rss = p.memory_info().rss
        finally:
            agent.stop()
            hook.stop()
    print(
        f"(b) footprint over {wall:.0f} s with 1000 extra idle processes: RSS {rss / 1e6:.1f} "
        f"MB (peak {peak / 1e6:.1f} MB; target <= 45, ratio {peak / 45e6:.2f}), CPU "
        f"{cpu:.3f}% of one core (target <= 0.5, ratio {cpu / 0.5:.2f})\n"
        f"    the dependencies alone, used as the agent uses them (the floor, median of 3): "
        f"{floor:.1f} MB; oomwatch's own: {rss / 1e6 - floor:+.1f} MB (ratio "
        f"{rss / 1e6 / floor:.2f})\n"
        f"    the child that checks the settings and receivers at start and at each reload "
        f"(median of 3): peak RSS {statistics.median(c[0] for c in checks):.1f} MB for "
        f"{statistics.median(c[1] for c in checks):.2f} s, then it exits"
    )


def sampling(processes: int, samples: int) -> None:
    """(d): CPU of one memory sample with `processes` extra idle processes, at 10 s apart.

    Baseline in the same run: the same sampler reading every process's stat at every
    sample (refresh_every=1), as before this stage.
    """
    from oomwatch.sampling.sampler import PidCache, Sampler

    print(f"(d) {load()}")
    with idle_processes(processes):
        figures = {}
        for every in (1, PidCache().refresh_every):
            sampler = Sampler(cache=PidCache(refresh_every=every))
            for _ in range(every + 1):  # past the young period
                sampler.sample()
            costs = []
            for _ in range(samples):
                c0 = time.process_time()
                snap = sampler.sample()
                costs.append(time.process_time() - c0)
            figures[every] = statistics.median(costs)
        n = snap.processes
    new, old = figures[PidCache().refresh_every], figures[1]
    print(
        f"(d) sampling {n} processes: {new * 1000:.1f} ms CPU a sample ({new * 1e6 / n:.1f} us "
        f"a process), {new / 10 * 100:.3f}% of one core at the default 10 s interval (target "
        f"<= 0.5, ratio {new / 10 * 100 / 0.5:.2f}); every stat read at every sample "
        f"(baseline): {old * 1000:.1f} ms, {old / 10 * 100:.3f}%; ratio to baseline "
        f"{new / old:.2f}"
    )


def flood(rate: int, seconds: float, kills: int) -> None:
    """(c): `rate` unrelated records per second for `seconds`, with `kills` real kills inside."""
    print(f"(c) {load()}")
    hook = Recorder().start()
    knob = Path("/proc/sys/kernel/printk_devkmsg")
    old = knob.read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        agent = AgentProcess(
            Path(tmp),
            {
                "OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook",
                "OOMWATCH_CONSOLE": "false",
                "OOMWATCH_SAMPLE_INTERVAL": "1",
            },
        ).start()
        assert agent.proc is not None
        p = psutil.Process(agent.proc.pid)
        pids: list[int] = []

        def killer() -> None:
            for i in range(kills):
                time.sleep(seconds / (kills + 1))
                pids.append(oom_kill(f"bench-flood-{i}"))

        knob.write_text("on\n")
        try:
            c0 = p.cpu_times()
            t = threading.Thread(target=killer)
            t.start()
            written = _write_flood(rate, seconds)
            t.join()
            c1 = p.cpu_times()
        finally:
            knob.write_text(old + "\n")
        time.sleep(4)  # two samples: reconciliation needs two checks in a row
        payloads = [r.json() for r in hook.received]
        agent.stop()
        hook.stop()
    reported = {
        i["incident"]["victim"]["pid"] for i in payloads if i["incident"].get("kind") == "oom_kill"
    } & set(pids)
    unseen = sum(
        i["incident"]["missing"] for i in payloads if i["incident"].get("kind") == "unseen_kills"
    )
    lost = sum(
        i["incident"]["records_lost"] for i in payloads if i["incident"].get("kind") == "log_gap"
    )
    cpu = (c1.user + c1.system - c0.user - c0.system) / seconds * 100
    accounted = len(reported) + unseen
    print(
        f"(c) flood of {written} records in {seconds:.0f} s ({written / seconds:.0f}/s) with "
        f"{len(pids)} real kills: {len(reported)} reported, {unseen} counted as unseen, "
        f"{accounted}/{len(pids)} accounted for; {lost} records lost; agent CPU "
        f"{cpu:.0f}% of one core"
    )


def report_lines(i: int, uptime: float) -> list[str]:
    """Kill number `i` as kern.log lines: its own pid and cgroup, at `uptime`."""
    from oomwatch.notify.sample import REPORT

    pid, cgroup = 200000 + i, f"/bench-incidents/c{i}"
    day = time.strftime("%b %e %H:%M:%S")
    out = []
    for n, line in enumerate(REPORT.splitlines()):
        text = line.split("] ", 1)[1].replace("183960", str(pid))
        if text.startswith("oom-kill:"):
            text = (
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
                f"oom_memcg={cgroup},task_memcg={cgroup},task=stress-ng-vm,pid={pid},uid=0"
            )
        out.append(f"{day} node1 kernel: [{uptime + n * 1e-5:12.6f}] {text}\n")
    return out


def rss_median(p: psutil.Process, reads: int = 5) -> float:
    """The median of a few RSS reads a second apart, in MB."""
    values = []
    for _ in range(reads):
        values.append(p.memory_info().rss / 1e6)
        time.sleep(1)
    return statistics.median(values)


def incidents(count: int) -> None:
    """(e): RSS idle, then after `count` incidents stored and delivered to a webhook."""
    print(f"(e) {load()}")
    hook = Recorder(keep_alive=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "kern.log"
        log.write_text("")
        (Path(tmp) / "state").mkdir()
        agent = AgentProcess(
            Path(tmp) / "state",
            {
                "OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook",
                "OOMWATCH_CONSOLE": "false",
                "OOMWATCH_SOURCE": "file",
                "OOMWATCH_LOG_FILE": str(log),
            },
        ).start()
        try:
            assert agent.proc is not None
            p = psutil.Process(agent.proc.pid)
            time.sleep(12)  # past start-up and the first samples
            idle = rss_median(p)
            peak = 0.0
            marks: list[str] = []
            t0 = time.monotonic()
            with log.open("a") as f:
                for i in range(count):
                    f.writelines(report_lines(i, 1000.0 + i * 0.01))
                    if i % 200 == 199:
                        f.flush()
                        # at most 1,000 kills ahead of the receiver: a fact, not a sleep
                        while len(hook.received) < i - 1000:
                            time.sleep(0.01)
                        now_mb = p.memory_info().rss / 1e6
                        peak = max(peak, now_mb)
                        if (i + 1) in (1000, count // 4, count // 2, 3 * count // 4):
                            marks.append(f"{i + 1}: {now_mb:.1f}")
            while len(hook.received) < count and time.monotonic() - t0 < 900:
                time.sleep(0.1)
            wall = time.monotonic() - t0
            stored = agent.metric("oomwatch_incidents_total")
            time.sleep(2)  # quiet: the agent trims its heap once the log is quiet
            after = rss_median(p)
        finally:
            agent.stop()
            hook.stop()
    got = len(hook.received)
    print(
        f"(e) {count} incidents in {wall:.0f} s: {stored:.0f} stored, {got} delivered; RSS idle "
        f"{idle:.1f} MB (baseline), after {after:.1f} MB (peak while busy {peak:.1f}): "
        f"{after - idle:+.1f} MB (target <= +10.0), ratio {after / idle:.2f}"
    )
    print(f"(e) RSS MB after so many incidents, while busy: {'; '.join(marks)}")


def _write_flood(rate: int, seconds: float) -> int:
    fd = os.open("/dev/kmsg", os.O_WRONLY)
    written = 0
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            while written < due:
                os.write(
                    fd,
                    b"<6>bench flood: eth0 link is up, 1000 Mbps full duplex flow control rx/tx\n",
                )
                written += 1
            time.sleep(0.001)
    finally:
        os.close(fd)
    return written


def main() -> None:
    """Run the parts asked for."""
    if os.geteuid() != 0:
        sys.exit("bench/agent.py needs root (memory cgroups, /dev/kmsg)")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("latency", "footprint", "flood", "sampling", "incidents"))
    ap.add_argument("--processes", type=int, default=5000, help="for the sampling part")
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--restart-every", type=int, default=10, help="kills per agent start")
    ap.add_argument(
        "--receiver",
        choices=("bare", "recorder"),
        default="bare",
        help="the latency part's webhook receiver (recorder: the tests' http.server)",
    )
    ap.add_argument("--seconds", type=float, default=300.0, help="footprint duration")
    ap.add_argument("--rate", type=int, default=50000)
    ap.add_argument("--incidents", type=int, default=20000, help="for the incidents part")
    args = ap.parse_args()
    if args.only in (None, "latency"):
        latency(args.kills, args.restart_every, args.receiver)
    if args.only in (None, "flood"):
        flood(args.rate, 10.0, 5)
    if args.only in (None, "sampling"):
        sampling(args.processes, 20)
    if args.only in (None, "incidents"):
        incidents(args.incidents)
    if args.only in (None, "footprint"):
        footprint(args.seconds)


if __name__ == "__main__":
    main()
