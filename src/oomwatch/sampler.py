"""Samples memory: the system, swap, PSI, every limited memory cgroup, and the processes.

A bounded per-pid cache keeps each process's command line, user, cgroup and RSS
history, so a victim that is already dead when its kill is read can still be
described. Reading is cheap on purpose: one small read of `/proc/<pid>/stat` per
process per sample; command line and cgroup only for processes not seen before.
"""

from __future__ import annotations

import os
import pwd
import threading
import time
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import psutil

UNLIMITED_BYTES = 1 << 60
MAX_CGROUPS = 4096


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """What the sampler knows of one process."""

    pid: int
    start_ticks: int
    comm: str
    cmdline: tuple[str, ...]
    uid: int | None
    user: str | None
    cgroup: str | None
    rss_kb: int


@dataclass(frozen=True, slots=True)
class CgroupMem:
    """A memory cgroup with a limit: usage and limit in bytes, and its OOM-kill counter."""

    path: str
    usage_bytes: int
    limit_bytes: int
    oom_kills: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One sample of the machine's memory."""

    time: float
    mem_total_kb: int
    mem_available_kb: int
    swap_total_kb: int
    swap_free_kb: int
    psi_some_avg10: float | None
    psi_full_avg10: float | None
    vmstat_oom_kill: int | None
    cgroups: tuple[CgroupMem, ...]
    top: tuple[ProcInfo, ...]
    processes: int

    @property
    def mem_available_pct(self) -> float:
        """Available memory as a percentage of the total."""
        return 100.0 * self.mem_available_kb / self.mem_total_kb if self.mem_total_kb else 100.0

    def to_dict(self) -> dict[str, object]:
        """The memory figures an incident carries."""
        return {
            "mem_total_kb": self.mem_total_kb,
            "mem_available_kb": self.mem_available_kb,
            "swap_total_kb": self.swap_total_kb,
            "swap_free_kb": self.swap_free_kb,
            "psi_some_avg10": self.psi_some_avg10,
            "psi_full_avg10": self.psi_full_avg10,
        }


@dataclass(slots=True)
class _Entry:
    info: ProcInfo
    # RSS in kB at the last samples this process was alive for (4 bytes each: the
    # cache holds every process of the node)
    history: array[int]
    last_seen: float


@dataclass(slots=True)
class PidCache:
    """Processes by pid, bounded; dead ones kept `keep_dead_s` to describe late-read victims."""

    max_entries: int = 8192
    keep_dead_s: float = 300.0
    history: int = 30
    _times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    _entries: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, pid: int) -> tuple[ProcInfo, list[tuple[float, int]]] | None:
        """A process's details and RSS history (time, kB), alive or recently dead."""
        with self._lock:
            e = self._entries.get(pid)
            if e is None:
                return None
            # a process is in every sample from its start to its end, so its values
            # are the last ones of the samples up to when it was last seen
            times = [t for t in self._times if t <= e.last_seen][-len(e.history) :]
            return e.info, list(zip(times, e.history, strict=False))

    def __len__(self) -> int:
        return len(self._entries)

    def note_sample(self, t: float) -> None:
        """A sample starts at time t."""
        with self._lock:
            self._times.append(t)

    def entry(self, pid: int) -> _Entry | None:
        """The raw entry of a pid (for the sampler)."""
        with self._lock:
            return self._entries.get(pid)

    def put(self, pid: int, entry: _Entry) -> None:
        """Store or refresh a pid's entry as the most recently seen."""
        with self._lock:
            self._entries[pid] = entry
            self._entries.move_to_end(pid)

    def evict(self, now: float) -> None:
        """Drop processes dead for longer than `keep_dead_s`, then the oldest past the bound."""
        with self._lock:
            for pid in [
                p for p, e in self._entries.items() if now - e.last_seen > self.keep_dead_s
            ]:
                del self._entries[pid]
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class Sampler:
    """Takes `Snapshot`s and keeps the pid cache current."""

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        sys_root: Path = Path("/sys"),
        *,
        top_n: int = 10,
        cache: PidCache | None = None,
    ) -> None:
        self.proc = proc_root
        self.sys = sys_root
        self.top_n = top_n
        self.cache = cache or PidCache()
        self._users: dict[int, str | None] = {}
        self._page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        psutil.PROCFS_PATH = str(proc_root)

    def sample(self) -> Snapshot:
        """Read everything once (run it off the event loop: it reads many small files)."""
        now = time.time()
        self.cache.note_sample(now)
        vm = psutil.virtual_memory()
        sw = psutil.swap_memory()
        some, full = self._psi()
        procs = self._scan(now)
        top = tuple(sorted(procs, key=lambda p: -p.rss_kb)[: self.top_n])
        return Snapshot(
            time=now,
            mem_total_kb=vm.total // 1024,
            mem_available_kb=vm.available // 1024,
            swap_total_kb=sw.total // 1024,
            swap_free_kb=sw.free // 1024,
            psi_some_avg10=some,
            psi_full_avg10=full,
            vmstat_oom_kill=self.vmstat_oom_kill(),
            cgroups=tuple(self._cgroups()),
            top=top,
            processes=len(procs),
        )

    def vmstat_oom_kill(self) -> int | None:
        """The kernel's count of OOM kills since boot (/proc/vmstat oom_kill, 4.13+)."""
        try:
            with (self.proc / "vmstat").open("rb") as f:
                for line in f:
                    if line.startswith(b"oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            return None
        return None

    # -- processes ---------------------------------------------------------------------

    def _scan(self, now: float) -> list[ProcInfo]:
        seen: list[ProcInfo] = []
        try:
            entries = list(os.scandir(self.proc))
        except OSError:
            return seen
        cache = self.cache
        for entry in entries:
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            stat = _read(self.proc / entry.name / "stat")
            if stat is None:
                continue
            close = stat.rfind(b")")
            fields = stat[close + 2 :].split()
            if len(fields) < 22:
                continue
            comm = stat[stat.find(b"(") + 1 : close].decode("utf-8", "backslashreplace")
            start = int(fields[19])
            rss_kb = int(fields[21]) * self._page_kb
            e = cache.entry(pid)
            if e is None or e.info.start_ticks != start:
                info = self._describe(pid, start, comm, rss_kb)
                e = _Entry(info, array("I"), now)
            else:
                old = e.info
                e.info = ProcInfo(
                    old.pid,
                    old.start_ticks,
                    comm,
                    old.cmdline,
                    old.uid,
                    old.user,
                    old.cgroup,
                    rss_kb,
                )
            e.history.append(min(rss_kb, 0xFFFFFFFF))
            if len(e.history) > cache.history:
                del e.history[0]
            e.last_seen = now
            cache.put(pid, e)
            seen.append(e.info)
        cache.evict(now)
        return seen

    def _describe(self, pid: int, start: int, comm: str, rss_kb: int) -> ProcInfo:
        base = self.proc / str(pid)
        raw = _read(base / "cmdline") or b""
        cmdline = tuple(a.decode("utf-8", "backslashreplace") for a in raw.split(b"\0") if a)
        try:
            uid: int | None = os.stat(base).st_uid
        except OSError:
            uid = None
        return ProcInfo(
            pid,
            start,
            comm,
            cmdline,
            uid,
            self._user(uid),
            _memory_cgroup(_read(base / "cgroup")),
            rss_kb,
        )

    def _user(self, uid: int | None) -> str | None:
        if uid is None:
            return None
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = None
        return self._users[uid]

    # -- system --------------------------------------------------------------------------

    def _psi(self) -> tuple[float | None, float | None]:
        raw = _read(self.proc / "pressure" / "memory")
        if raw is None:
            return None, None
        values: dict[str, float] = {}
        for line in raw.decode().splitlines():
            kind, _, rest = line.partition(" ")
            for item in rest.split():
                if item.startswith("avg10="):
                    values[kind] = float(item[6:])
        return values.get("some"), values.get("full")

    def _cgroups(self) -> list[CgroupMem]:
        found: list[CgroupMem] = []
        cg = self.sys / "fs" / "cgroup"
        roots = []
        if (cg / "memory" / "memory.limit_in_bytes").exists():
            roots.append((cg / "memory", 1))
        for unified in (cg, cg / "unified"):
            if "memory" in (_read(unified / "cgroup.controllers") or b"").decode().split():
                roots.append((unified, 2))
                break
        for root, version in roots:
            for dirpath, dirnames, _ in os.walk(root):
                if len(found) >= MAX_CGROUPS:
                    return found
                path = Path(dirpath)
                if path == root:
                    continue
                mem = _cgroup_mem(path, "/" + str(path.relative_to(root)), version)
                if mem is not None:
                    found.append(mem)
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        return found


def _cgroup_mem(path: Path, name: str, version: int) -> CgroupMem | None:
    if version == 2:
        limit_raw = _read(path / "memory.max")
        if limit_raw is None or limit_raw.strip() == b"max":
            return None
        usage_raw = _read(path / "memory.current")
        events = _read(path / "memory.events") or b""
    else:
        limit_raw = _read(path / "memory.limit_in_bytes")
        usage_raw = _read(path / "memory.usage_in_bytes")
        events = _read(path / "memory.oom_control") or b""
    try:
        limit = int(limit_raw or b"0")
        usage = int(usage_raw or b"0")
    except ValueError:
        return None
    if limit <= 0 or limit >= UNLIMITED_BYTES:
        return None
    kills = None
    for line in events.splitlines():
        if line.startswith(b"oom_kill "):
            kills = int(line.split()[1])
    return CgroupMem(name, usage, limit, kills)


def _memory_cgroup(raw: bytes | None) -> str | None:
    """The memory cgroup from /proc/<pid>/cgroup (v1 `memory` line, else the v2 `0::` line)."""
    if not raw:
        return None
    v2 = None
    for line in raw.decode("utf-8", "backslashreplace").splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            return path
        if hid == "0" and controllers == "":
            v2 = path
    return v2


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None
