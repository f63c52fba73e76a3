"""Read this machine's kernel log once, from the best source it offers (for `diagnose`).

Order for `auto`: `/dev/kmsg`, journald through `journalctl`, `/var/log/kern.log`
(or `messages`, `syslog`), and last the `dmesg` command. Paths and the command
runner are parameters so tests can point them at fixtures.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oomwatch.errors import LogUnavailableError
from oomwatch.kernel.parallel import FileScan
from oomwatch.kernel.parser import ParseStats
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill

SOURCES = ("auto", "kmsg", "journald", "file", "dmesg")
LOG_FILES = ("kern.log", "messages", "syslog")

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[bytes]"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a fixed argument list (never a shell) and capture its output."""
    return subprocess.run(list(argv), capture_output=True, check=False, timeout=120)


@dataclass(slots=True)
class LocalLog:
    """What diagnose found: the kills, where it read them, and what it could not read."""

    source: str
    kills: list[OomKill]
    stats: ParseStats
    lines: int = 0
    first_uptime_s: float | None = None
    tried: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Roots:
    """Where this machine's kernel interfaces and logs are (replaced by fixture trees in tests)."""

    kmsg: Path = Path("/dev/kmsg")
    proc: Path = Path("/proc")
    log_dir: Path = Path("/var/log")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Roots:
        """Roots from OOMWATCH_KMSG_PATH, OOMWATCH_PROC_ROOT and OOMWATCH_LOG_DIR (host mounts)."""
        d = cls()
        return cls(
            kmsg=Path(environ.get("OOMWATCH_KMSG_PATH") or d.kmsg),
            proc=Path(environ.get("OOMWATCH_PROC_ROOT") or d.proc),
            log_dir=Path(environ.get("OOMWATCH_LOG_DIR") or d.log_dir),
        )


def boot_time(roots: Roots) -> datetime | None:
    """When this machine booted, from `/proc/stat`'s btime."""
    try:
        for line in (roots.proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return datetime.fromtimestamp(int(line.split()[1]), tz=UTC)
    except (OSError, ValueError):
        return None
    return None


def read_local_log(
    source: str = "auto",
    *,
    roots: Roots | None = None,
    run: Runner = run_command,
    since: datetime | None = None,
) -> LocalLog:
    """Read the kernel log from `source` (or the first that works) and parse it."""
    roots = roots or Roots()
    order = ["kmsg", "journald", "file", "dmesg"] if source == "auto" else [source]
    tried: list[str] = []
    for name in order:
        try:
            log = _READERS[name](roots, run, since)
        except _UnavailableError as e:
            tried.append(f"{_LABEL[name]}: {e}")
            continue
        log.tried = tried
        booted = boot_time(roots)
        if booted is not None:
            log.kills = [_with_wall_time(k, booted) for k in log.kills]
        if name in ("kmsg", "dmesg"):  # this machine's own ring buffer names no host
            host = socket.gethostname()
            log.kills = [k if k.host else dataclasses.replace(k, host=host) for k in log.kills]
        if since is not None:
            log.kills = [k for k in log.kills if k.time is None or _aware(k.time) >= since]
        return log
    advice = ""
    if any("ermission" in t or "not permitted" in t for t in tried):
        advice = (
            "\nRun as root, or with CAP_SYSLOG, or as a member of the adm or systemd-journal group."
        )
    raise LogUnavailableError("cannot read the kernel log:\n  " + "\n  ".join(tried) + advice)


class _UnavailableError(Exception):
    """This source cannot be read here; the message says why."""


def _scan(source: str, lines: Iterator[bytes], reference: datetime | None) -> LocalLog:
    scanner = LogScanner(reference=reference)
    kills: list[OomKill] = []
    count = 0
    first_uptime: float | None = None
    for raw in lines:
        count += 1
        for line in scanner.decoder.decode(raw, count):
            if first_uptime is None and line.uptime_s is not None:
                first_uptime = line.uptime_s
            kills.extend(scanner.parser.feed(line))
    kills.extend(scanner.close())
    return LocalLog(source, kills, scanner.stats, count, first_uptime)


def _kmsg_records(path: Path) -> Iterator[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise _UnavailableError(e.strerror or str(e)) from e
    try:
        while True:
            try:
                rec = os.read(fd, 16384)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EPIPE:  # records overwritten while reading: go on
                    continue
                raise _UnavailableError(e.strerror or str(e)) from e
            if not rec:
                return
            yield from rec.split(b"\n")
    finally:
        os.close(fd)


def _read_kmsg(roots: Roots, _run: Runner, _since: datetime | None) -> LocalLog:
    records = _kmsg_records(roots.kmsg)
    first = next(records, None)  # opening and the first read raise _UnavailableError here
    if first is None:
        raise _UnavailableError("empty")

    def chained() -> Iterator[bytes]:
        yield first
        yield from records

    return _scan(str(roots.kmsg), chained(), None)


def _read_journald(_roots: Roots, run: Runner, since: datetime | None) -> LocalLog:
    argv = ["journalctl", "-k", "-o", "json", "--no-pager", "-q"]
    argv += ["--since", since.astimezone().strftime("%Y-%m-%d %H:%M:%S")] if since else ["-b"]
    try:
        done = run(argv)
    except (OSError, subprocess.SubprocessError) as e:
        raise _UnavailableError(str(e)) from e
    lines = [ln for ln in done.stdout.split(b"\n") if ln.startswith(b"{")]
    if done.returncode != 0 or not lines:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _UnavailableError(why[-1] if why else "no kernel messages in the journal")
    return _scan("journald (journalctl -k)", iter(lines), None)


def _read_file(roots: Roots, _run: Runner, _since: datetime | None) -> LocalLog:
    reasons = []
    for name in LOG_FILES:
        path = roots.log_dir / name
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime)
            scan = FileScan(path, reference=mtime)
            kills = list(scan)
            return LocalLog(str(path), kills, scan.stats, scan.stats.lines)
        except OSError as e:
            reasons.append(f"{path}: {e.strerror or e}")
    raise _UnavailableError("; ".join(reasons))


def _read_dmesg(_roots: Roots, run: Runner, _since: datetime | None) -> LocalLog:
    try:
        done = run(["dmesg"])
    except (OSError, subprocess.SubprocessError) as e:
        raise _UnavailableError(str(e)) from e
    if done.returncode != 0:
        raise _UnavailableError(done.stderr.decode("utf-8", "replace").strip() or "failed")
    return _scan("dmesg", iter(done.stdout.split(b"\n")), None)


_READERS: dict[str, Callable[[Roots, Runner, datetime | None], LocalLog]] = {
    "kmsg": _read_kmsg,
    "journald": _read_journald,
    "file": _read_file,
    "dmesg": _read_dmesg,
}
_LABEL = {"kmsg": "/dev/kmsg", "journald": "journalctl", "file": "log files", "dmesg": "dmesg"}


def _with_wall_time(k: OomKill, booted: datetime) -> OomKill:
    """Give kills that carry only the kernel's uptime stamp a wall time."""
    if k.time is not None or k.uptime_s is None:
        return k
    return dataclasses.replace(k, time=booted + timedelta(seconds=k.uptime_s))


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.astimezone()
