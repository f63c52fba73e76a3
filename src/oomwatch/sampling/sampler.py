"""Samples memory: the system, swap, PSI, every limited memory cgroup, and the processes.

A bounded per-pid cache keeps each process's command line, user, cgroup and RSS
history, so a victim that is already dead when its kill is read can still be
described. Reading is cheap on purpose: a new process is read fully (stat,
command line, cgroup, user) at the first sample that sees it; a known one costs
only its directory entry, and its `stat` is read again when it matters: every
sample while it is among the largest, young or growing, else every
`PidCache.refresh_every` samples. A reused pid gets a new directory inode, so it
is read as new. A process that runs another program (exec) or renames itself keeps
its pid and start time but not its name: a read that finds another name describes
it again, keeping its history. A program caught between its exec and the setting of
its arguments has its new name but no command line yet: it is read again.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import os
import pwd
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from oomwatch.model import CgroupMem, ProcInfo, Snapshot

UNLIMITED_BYTES = 1 << 60
MAX_CGROUPS = 4096


# Command lines are chosen by whoever starts a process: 4 KiB each are kept (the
# last argument kept ends in CUT), and once the cache holds max_cmdline_bytes of
# them, new ones keep only CMDLINE_LEAN.
CMDLINE_MAX = 4096
CMDLINE_LEAN = 256
CUT = "…"

PF_KTHREAD = 0x00200000  # in /proc/<pid>/stat's flags: kernel threads have no command line


@dataclass(slots=True)
class _Entry:
    info: ProcInfo  # what does not change until the process execs (rss_kb left at 0)
    # RSS in kB at the samples that read it, and when (seconds since the cache's
    # epoch): 8 bytes a reading, as the cache holds every process of the node
    history: array[int]
    times: array[int]
    last_seen: float
    rss_kb: int = 0
    ino: int = 0  # of /proc/<pid>: another process under the same pid has another
    first_at: int = 0  # the sample that first saw it
    hot: bool = True  # read at every sample (large, young or growing)
    name: bytes = b""  # the comm field of /proc/<pid>/stat as read, to notice an exec

    def reading(self, rss_kb: int, t: int, keep: int) -> None:
        """One RSS reading into the history (at most `keep`)."""
        self.rss_kb = rss_kb
        self.history.append(min(rss_kb, 0xFFFFFFFF))
        self.times.append(t)
        if len(self.history) > keep:
            del self.history[0]
            del self.times[0]


@dataclass(slots=True)
class PidCache:
    """Processes by pid, bounded; dead ones kept `keep_dead_s` to describe late-read victims."""

    max_entries: int = 8192
    # the bytes of command lines held: past it, new entries keep only their first CMDLINE_LEAN
    max_cmdline_bytes: int = 4 << 20
    cmdline_bytes: int = 0
    keep_dead_s: float = 300.0
    history: int = 30
    refresh_every: int = 6  # samples between two reads of a small, steady process
    epoch: float = field(default_factory=time.time)
    samples: int = 0
    # the sampler updates these under the lock; readers use get()
    entries: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, pid: int) -> tuple[ProcInfo, list[tuple[float, int]]] | None:
        """A process's details and RSS history (time, kB), alive or recently dead."""
        with self.lock:
            e = self.entries.get(pid)
            if e is None:
                return None
            times = [self.epoch + t for t in e.times]
            return e.info, list(zip(times, e.history, strict=True))

    def __len__(self) -> int:
        return len(self.entries)

    def note_sample(self) -> int:
        """A sample starts; its number."""
        with self.lock:
            self.samples += 1
            return self.samples

    def put(self, pid: int, entry: _Entry) -> None:
        """Store or refresh a pid's entry as the most recently seen."""
        with self.lock:
            entry.info = self._admit(entry.info)
            old = self.entries.get(pid)
            if old is not None:
                self.cmdline_bytes -= _cmdline_size(old.info.cmdline)
            self.entries[pid] = entry
            self.entries.move_to_end(pid)

    def redescribe(self, entry: _Entry, info: ProcInfo) -> None:
        """Give a known process the details read after it ran another program."""
        with self.lock:
            self.cmdline_bytes -= _cmdline_size(entry.info.cmdline)
            entry.info = self._admit(info)

    def _admit(self, info: ProcInfo) -> ProcInfo:
        """`info` counted in the command-line budget (under the lock); past it, a lean head."""
        size = _cmdline_size(info.cmdline)
        if self.cmdline_bytes + size > self.max_cmdline_bytes:
            info = dataclasses.replace(info, cmdline=cut_cmdline(info.cmdline, CMDLINE_LEAN))
            size = _cmdline_size(info.cmdline)
        self.cmdline_bytes += size
        return info

    def evict(self, now: float) -> None:
        """Drop processes dead for longer than `keep_dead_s`, then the oldest past the bound."""
        with self.lock:
            for pid in [p for p, e in self.entries.items() if now - e.last_seen > self.keep_dead_s]:
                self.cmdline_bytes -= _cmdline_size(self.entries.pop(pid).info.cmdline)
            while len(self.entries) > self.max_entries:
                _, gone = self.entries.popitem(last=False)
                self.cmdline_bytes -= _cmdline_size(gone.info.cmdline)


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
        self.cache = cache if cache is not None else PidCache()  # an empty cache is falsy
        self._page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        psutil.PROCFS_PATH = str(proc_root)

    def sample(self) -> Snapshot:
        """Read everything once (run it off the event loop: it reads many small files)."""
        now = time.time()
        vm = psutil.virtual_memory()
        sw = psutil.swap_memory()
        some, full = self._psi()
        count, top = self._scan(now)
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
            processes=count,
        )

    def vmstat_oom_kill(self) -> int | None:
        """The kernel's count of OOM kills since boot (/proc/vmstat oom_kill, 4.13+)."""
        # read at every kill to confirm it: whole, with raw reads, not a line at a time
        # (28 us, not 57)
        try:
            fd = os.open(self.proc / "vmstat", os.O_RDONLY)
            try:
                chunks = []
                while chunk := os.read(fd, 16384):
                    chunks.append(chunk)
            finally:
                os.close(fd)
            data = b"\n" + b"".join(chunks)
            at = data.find(b"\noom_kill ")
            if at < 0:
                return None
            end = data.find(b"\n", at + 10)
            return int(data[at + 10 : end if end >= 0 else None])
        except (OSError, ValueError):
            return None

    # -- processes ---------------------------------------------------------------------

    def _scan(self, now: float) -> tuple[int, tuple[ProcInfo, ...]]:
        """Every process into the cache; (how many processes, the largest ones).

        This runs for every process every sample, so it avoids objects it does not
        need: directory entries, no Path objects, one lock for the scan, and a read
        of /proc/<pid>/stat only for the processes that can have changed the answer.
        """
        try:
            found = [(d.name, d.inode()) for d in os.scandir(self.proc) if d.name.isdigit()]
        except OSError:
            return 0, ()
        cache = self.cache
        n = cache.note_sample()
        t = int(now - cache.epoch)
        every = cache.refresh_every
        proc = str(self.proc)
        page_kb = self._page_kb
        keep = cache.history
        sizes: list[tuple[int, _Entry]] = []
        new: list[tuple[int, int, bytes, int, int, bool]] = []
        execed: list[tuple[_Entry, bytes, bool]] = []
        with cache.lock:
            entries = cache.entries
            for name, ino in found:
                pid = int(name)
                e = entries.get(pid)
                # a steady small process is read once in `every` samples, pids spread
                if e is not None and e.ino == ino and not e.hot and (n + pid) % every:
                    e.last_seen = now
                    sizes.append((e.rss_kb, e))
                    continue
                stat = _read_str(f"{proc}/{name}/stat")
                if stat is None:
                    continue
                close = stat.rfind(b")")
                fields = stat[close + 2 :].split()
                if len(fields) < 22:
                    continue
                start = int(fields[19])
                rss_kb = int(fields[21]) * page_kb
                name_ = stat[stat.find(b"(") + 1 : close]
                user = fields[0] not in b"ZX" and not int(fields[6]) & PF_KTHREAD
                if e is None or e.info.start_ticks != start:
                    new.append((pid, start, name_, rss_kb, ino, user))
                    continue
                grew = rss_kb - e.rss_kb >= max(e.rss_kb // 10, 1024)
                e.reading(rss_kb, t, keep)
                e.ino, e.last_seen = ino, now
                e.hot = grew or n - e.first_at < every
                sizes.append((rss_kb, e))
                if e.name != name_:
                    execed.append((e, name_, user))
        # read outside the lock: several files each
        for e, name_, user in execed:
            had = bool(e.info.cmdline)
            info = self._describe(e.info.pid, e.info.start_ticks, _text(name_))
            cache.redescribe(e, info)
            e.name = _settled(name_, info, user)
            # caught mid-exec: read again at the next sample (once; then at its cadence)
            e.hot = e.hot or (had and not e.name)
        for pid, start, name_, rss_kb, ino, user in new:
            info = self._describe(pid, start, _text(name_))
            seen = _settled(name_, info, user)
            e = _Entry(info, array("I"), array("I"), now, ino=ino, first_at=n, name=seen)
            e.reading(rss_kb, t, keep)
            cache.put(pid, e)
            sizes.append((rss_kb, e))
        cache.evict(now)
        # the largest are read at every sample: they are the ones a kill is told with
        ranked = heapq.nlargest(2 * self.top_n, sizes, key=lambda s: s[0])
        for _, e in ranked:
            e.hot = True
        top = ranked[: self.top_n]
        return len(sizes), tuple(dataclasses.replace(e.info, rss_kb=rss) for rss, e in top)

    def _describe(self, pid: int, start: int, comm: str) -> ProcInfo:
        base = self.proc / str(pid)
        raw = _read(base / "cmdline", CMDLINE_MAX + 1) or b""
        cmdline = tuple(a.decode("utf-8", "backslashreplace") for a in raw.split(b"\0") if a)
        if len(raw) > CMDLINE_MAX:
            cmdline = cut_cmdline(cmdline, CMDLINE_MAX)
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
            user_of(uid),
            _memory_cgroup(_read(base / "cgroup")),
            0,
        )

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


def _settled(name: bytes, info: ProcInfo, user: bool) -> bytes:
    """The name to remember; empty (read again) for a program with no arguments yet."""
    # exec sets the new name before the new program's arguments are in place
    return name if info.cmdline or not user else b""


def _read_str(path: str) -> bytes | None:
    """One small file in one read (cheaper than open(): no buffered file object)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(path: Path, limit: int = -1) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def cut_cmdline(cmdline: tuple[str, ...], limit: int) -> tuple[str, ...]:
    """At most `limit` characters of arguments; a cut one ends in CUT (…)."""
    out: list[str] = []
    left = limit
    for arg in cmdline:
        if len(arg) >= left:
            out.append(arg[: max(left, 0)] + CUT)
            return tuple(out)
        out.append(arg)
        left -= len(arg) + 1
    return tuple(out)


def _cmdline_size(cmdline: tuple[str, ...]) -> int:
    return sum(len(a) + 1 for a in cmdline)


@functools.lru_cache(maxsize=1024)
def user_of(uid: int | None) -> str | None:
    """This node's name for a uid (its passwd: the host's, or the image's in a container)."""
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None
