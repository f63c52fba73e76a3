"""Make the real kernel OOM-kill a process inside a small memory cgroup (v1 or v2).

Used by `oomwatch drill` and by the tests. The hog only ever allocates inside a
cgroup with a small limit, so the machine itself never runs short, and the
cgroup is removed afterwards even when something fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from oomwatch.errors import UsageError

MIB = 1 << 20

# The hog joins its cgroup itself (no preexec_fn, safe with threads), renames its
# comm, then touches memory 1 MiB at a time until the kernel kills it.
_HOG = r"""
import ctypes, os, sys, time
procs, name, mib, hold = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), float(sys.argv[4])
with open(procs, "w") as f:
    f.write(str(os.getpid()))
if name:
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
chunks = []
for _ in range(mib):
    chunks.append(b"x" * (1 << 20))
time.sleep(hold)
"""


@dataclass(frozen=True, slots=True)
class MemoryController:
    """Where the memory controller is mounted and which version it is."""

    version: int
    root: Path


def find_memory_controller(sys_root: Path = Path("/sys")) -> MemoryController | None:
    """The memory controller of this machine: v2 (unified) if it has one, else v1."""
    cg = sys_root / "fs" / "cgroup"
    for unified in (cg, cg / "unified"):
        controllers = unified / "cgroup.controllers"
        try:
            if "memory" in controllers.read_text().split():
                return MemoryController(2, unified)
        except OSError:
            continue
    v1 = cg / "memory"
    if (v1 / "memory.limit_in_bytes").exists():
        return MemoryController(1, v1)
    return None


@contextmanager
def memory_cgroup(name: str, limit_bytes: int, sys_root: Path = Path("/sys")) -> Iterator[Path]:
    """A fresh memory cgroup with a hard limit and no swap; removed on exit.

    `name` may be a path (`test-1/docker/<id>`, `test-2/kubepods/burstable/pod<uid>/<id>`)
    to imitate a container runtime's layout; every level it creates is removed.
    """
    ctl = find_memory_controller(sys_root)
    if ctl is None:
        raise UsageError("this machine has no memory cgroup controller (v1 or v2)")
    if os.geteuid() != 0:
        raise UsageError("creating a memory cgroup needs root")
    path = ctl.root / name
    levels = [ctl.root / Path(*Path(name).parts[: i + 1]) for i in range(len(Path(name).parts))]
    if levels[0].exists():
        raise UsageError(f"cgroup {levels[0]} exists already")
    created: list[Path] = []
    try:
        for level in levels:
            if ctl.version == 2:
                _enable_memory_v2(level.parent)
            level.mkdir()
            created.append(level)
        if ctl.version == 2:
            (path / "memory.max").write_text(str(limit_bytes))
            swap = path / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            memsw = path / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                memsw.write_text(str(limit_bytes))
        yield path
    finally:
        for level in reversed(created):
            remove_cgroup(level)


def remove_cgroup(path: Path, timeout_s: float = 10.0) -> None:
    """Remove a cgroup once its processes are gone (they may take a moment to exit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Hog:
    """A process that will allocate memory in a cgroup when told to."""

    proc: subprocess.Popen[bytes]
    cgroup: Path

    @property
    def pid(self) -> int:
        """The hog's pid."""
        return self.proc.pid

    def go(self) -> None:
        """Start allocating."""
        stdin = self.proc.stdin
        if stdin is None:
            raise RuntimeError("the hog was started without a pipe to its stdin")
        stdin.write(b"go\n")
        stdin.flush()

    def wait(self, timeout_s: float = 60.0) -> int:
        """Wait for the hog to end; its return code (-9 when the OOM killer got it)."""
        try:
            return self.proc.wait(timeout_s)
        finally:
            self.close()

    def close(self) -> None:
        """End the hog if it still runs (by its own pid) and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Hog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_hog(
    cgroup: Path,
    *,
    comm: str = "",
    alloc_mib: int = 256,
    hold_s: float = 0.0,
    argv_extra: tuple[str, ...] = (),
) -> Hog:
    """Start a hog that joins `cgroup` and waits for `go()` before it allocates."""
    procs = cgroup / ("cgroup.procs" if (cgroup / "cgroup.procs").exists() else "tasks")
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOG, str(procs), comm, str(alloc_mib), str(hold_s), *argv_extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    if proc.stdout is None or proc.stdout.readline() != b"ready\n":
        proc.kill()
        proc.wait()
        raise RuntimeError("the memory hog did not start")
    return Hog(proc, cgroup)


def _enable_memory_v2(root: Path) -> None:
    control = root / "cgroup.subtree_control"
    if "memory" not in control.read_text().split():
        control.write_text("+memory")
