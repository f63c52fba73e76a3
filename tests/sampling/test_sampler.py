"""The sampler against this machine and against a cgroup v2 fixture tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oomwatch.drill.memcg import find_memory_controller
from oomwatch.model import ProcInfo
from oomwatch.sampling.sampler import Sampler, _memory_cgroup


def v2_tree(root: Path) -> Path:
    """A /sys with a cgroup v2 hierarchy: one limited pod cgroup, one unlimited."""
    cg = root / "fs" / "cgroup"
    cg.mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    pod = cg / "kubepods.slice" / "kubepods-pod1.slice"
    pod.mkdir(parents=True)
    (pod / "memory.max").write_text("104857600\n")
    (pod / "memory.current").write_text("99614720\n")
    (pod / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\n")
    (cg / "kubepods.slice" / "memory.max").write_text("max\n")
    (cg / "kubepods.slice" / "memory.current").write_text("1\n")
    return root


def test_cgroup_v2_limits_from_a_fixture(tmp_path: Path) -> None:
    """Limited v2 cgroups are found with usage, limit and oom_kill count; unlimited ones not."""
    sampler = Sampler(Path("/proc"), v2_tree(tmp_path))
    snap = sampler.sample()
    assert [(c.path, c.usage_bytes, c.limit_bytes, c.oom_kills) for c in snap.cgroups] == [
        ("/kubepods.slice/kubepods-pod1.slice", 99614720, 104857600, 2)
    ]
    ctl = find_memory_controller(tmp_path)
    assert ctl is not None
    assert ctl.version == 2


def test_this_machine() -> None:
    """On the real /proc: memory figures, this process in the cache with its command line."""
    sampler = Sampler()
    snap = sampler.sample()
    assert snap.mem_total_kb > 0
    assert 0 <= snap.mem_available_pct <= 100
    assert snap.processes >= 1
    cached = sampler.cache.get(os.getpid())
    assert cached is not None
    info, history = cached
    assert info.cmdline
    assert history
    assert len(snap.top) <= 10


def test_memory_cgroup_of_a_process() -> None:
    """The memory line of /proc/<pid>/cgroup (v1), else the v2 line."""
    assert _memory_cgroup(b"12:pids:/a\n4:memory:/docker/abc\n0::/x\n") == "/docker/abc"
    assert _memory_cgroup(b"0::/system.slice/x.service\n") == "/system.slice/x.service"
    assert _memory_cgroup(b"") is None


@pytest.mark.fault
def test_a_hostile_command_line_is_cut_when_cached() -> None:
    """A process with a 1 MB command line costs the cache 4 KiB, its last argument marked."""
    import subprocess
    import sys

    from oomwatch.sampling.sampler import CMDLINE_MAX, CUT

    args = ["x" * 131_000] * 8  # each under MAX_ARG_STRLEN: 1 MB in all
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    try:
        sampler = Sampler()
        sampler.sample()
        got = sampler.cache.get(proc.pid)
        assert got is not None
        cmdline = got[0].cmdline
        assert sum(len(a) + 1 for a in cmdline) <= CMDLINE_MAX + len(CUT) + 1
        assert cmdline[0] == sys.executable
        assert cmdline[-1].endswith(CUT)
    finally:
        proc.kill()
        proc.wait()


def test_the_cache_bounds_the_bytes_of_command_lines() -> None:
    """Past the byte budget, new entries keep only a short head of their command line.

    The total is then at most the budget plus CMDLINE_LEAN per entry (8192 entries:
    4 MiB + 2 MiB), whatever the command lines.
    """
    from array import array

    from oomwatch.model import ProcInfo
    from oomwatch.sampling.sampler import CMDLINE_LEAN, PidCache, _Entry

    cache = PidCache(max_cmdline_bytes=64 * 1024)
    for pid in range(1, 200):
        info = ProcInfo(pid, 0, "hog", ("a" * 4000,), 0, "root", None, 0)
        cache.put(pid, _Entry(info, array("I", [1]), array("I", [0]), 0.0))
    # the budget, plus a lean head for each entry past it: bounded by the entry count
    full = 64 * 1024 // 4001
    assert cache.cmdline_bytes == full * 4001 + (199 - full) * (CMDLINE_LEAN + 2)
    lean = cache.get(199)
    assert lean is not None
    assert len(lean[0].cmdline[0]) == CMDLINE_LEAN + 1  # cut, with its marker
    cache.evict(now=10_000.0)  # all dead long ago: the bytes go with them
    assert (len(cache), cache.cmdline_bytes) == (0, 0)


def _fake_proc(root: Path, procs: dict[int, tuple[str, int, int]]) -> Path:
    """A /proc with this machine's memory files and `procs` (pid: comm, start ticks, RSS pages)."""
    root.mkdir(exist_ok=True)
    for name in ("meminfo", "vmstat", "swaps", "pressure", "stat"):
        if not (root / name).exists() and Path(f"/proc/{name}").exists():
            (root / name).symlink_to(f"/proc/{name}")
    for pid, (comm, start, pages) in procs.items():
        d = root / str(pid)
        d.mkdir(exist_ok=True)
        fields = ["S", *["0"] * 18, str(start), "0", str(pages), *["0"] * 30]
        (d / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
        (d / "cmdline").write_bytes(f"/bin/{comm}\0--flag\0".encode())
        (d / "cgroup").write_text("0::/test.slice\n")
    return root


def _exec(pid_dir: Path, old: str, new: str, cmdline: bytes) -> None:
    """The fake process runs another program: `new` in its stat, `cmdline` as its own."""
    stat = pid_dir / "stat"
    stat.write_text(stat.read_text().replace(f"({old})", f"({new})"))
    (pid_dir / "cmdline").write_bytes(cmdline)


def _count_stat_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from oomwatch.sampling import sampler as mod

    reads: list[str] = []
    real = mod._read_str

    def counting(path: str) -> bytes | None:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(mod, "_read_str", counting)
    return reads


def test_a_steady_small_process_is_read_once_in_a_few_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 steady processes cost 200/6 stat reads a sample (plus the largest), not 200."""
    procs = {pid: (f"p{pid}", 1000 + pid, 10 + pid % 7) for pid in range(100, 300)}
    sampler = Sampler(_fake_proc(tmp_path / "proc", procs), tmp_path, top_n=5)
    reads = _count_stat_reads(monkeypatch)
    for _ in range(sampler.cache.refresh_every + 1):  # young: read at every sample
        sampler.sample()
    per_sample = []
    for _ in range(12):
        reads.clear()
        snap = sampler.sample()
        per_sample.append(len(reads))
        assert snap.processes == 200
    every = sampler.cache.refresh_every
    assert max(per_sample) <= 200 / every + 1 + 2 * 5  # its share, and the largest
    assert sum(per_sample) / len(per_sample) < 50
    # each process was read within the last `every` samples: none is forgotten
    info, history = sampler.cache.get(150) or (None, [])
    assert info is not None
    assert info.cmdline == ("/bin/p150", "--flag")
    assert len(history) >= 2


def test_growth_and_size_are_read_at_every_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that grows is read at every sample from the read that saw it grow."""
    procs = {pid: (f"p{pid}", 1000 + pid, 10) for pid in range(100, 160)}
    proc = _fake_proc(tmp_path / "proc", procs)
    sampler = Sampler(proc, tmp_path, top_n=3)
    for _ in range(sampler.cache.refresh_every + 1):
        sampler.sample()
    reads = _count_stat_reads(monkeypatch)
    pages = 10
    seen_growing = []
    for _ in range(3 * sampler.cache.refresh_every):
        pages += 2000  # 8 MB a sample
        _fake_proc(proc, {130: ("leaky", 1130, pages)})
        reads.clear()
        snap = sampler.sample()
        seen_growing.append(f"{proc}/130/stat" in reads)
    first = seen_growing.index(True)
    assert first < sampler.cache.refresh_every  # its turn came within `every` samples
    assert all(seen_growing[first:])
    assert snap.top[0].pid == 130
    assert snap.top[0].rss_kb == pages * sampler._page_kb


def test_a_reused_pid_is_read_as_a_new_process(tmp_path: Path) -> None:
    """Another process under the same pid (a new /proc/<pid> inode) is described afresh."""
    import shutil

    proc = _fake_proc(tmp_path / "proc", {200: ("old", 500, 10), 201: ("other", 501, 10)})
    sampler = Sampler(proc, tmp_path)
    for _ in range(sampler.cache.refresh_every + 1):
        sampler.sample()
    shutil.rmtree(proc / "200")
    _fake_proc(proc, {300: ("keep-inode-apart", 1, 1)})  # the old inode is not handed out again
    _fake_proc(proc, {200: ("new", 900, 10)})
    sampler.sample()
    got = sampler.cache.get(200)
    assert got is not None
    assert got[0].comm == "new"
    assert got[0].cmdline == ("/bin/new", "--flag")


def test_a_process_that_runs_another_program_is_described_again(tmp_path: Path) -> None:
    """An exec keeps pid, start time and inode but not the name: the new one is read.

    A steady process is read within `refresh_every` samples; its history is kept and
    the cache's count of command-line bytes follows the new command line.
    """
    proc = _fake_proc(tmp_path / "proc", {200: ("sh", 500, 10), 201: ("other", 501, 10)})
    sampler = Sampler(proc, tmp_path)
    for _ in range(sampler.cache.refresh_every + 1):
        sampler.sample()
    before = sampler.cache.cmdline_bytes
    readings = len((sampler.cache.get(200) or (None, []))[1])
    _exec(proc / "200", "sh", "java", b"java\0-Xmx1g\0-jar\0app.jar\0")
    for _ in range(sampler.cache.refresh_every):
        sampler.sample()
    got = sampler.cache.get(200)
    assert got is not None
    assert (got[0].comm, got[0].cmdline) == ("java", ("java", "-Xmx1g", "-jar", "app.jar"))
    assert len(got[1]) > readings  # the readings before the exec are kept
    grown = len("java -Xmx1g -jar app.jar ") - len("/bin/sh --flag ")
    assert sampler.cache.cmdline_bytes == before + grown


def test_a_program_caught_before_its_arguments_is_read_again(tmp_path: Path) -> None:
    """Exec names the new program before its arguments are in place: that read is redone.

    A small, steady process is caught in that window: its empty command line is not
    kept as settled, and the next sample reads it again, not `refresh_every` later.
    """
    procs = {200: ("sh", 500, 1)} | {300 + i: ("big", 600 + i, 1000 + i) for i in range(10)}
    proc = _fake_proc(tmp_path / "proc", procs)
    sampler = Sampler(proc, tmp_path, top_n=2)
    for _ in range(sampler.cache.refresh_every + 1):
        sampler.sample()
    _exec(proc / "200", "sh", "java", b"")
    for _ in range(sampler.cache.refresh_every):
        sampler.sample()
        got = sampler.cache.get(200)
        assert got is not None
        if got[0].comm == "java":
            break
    assert got is not None
    assert got[0].cmdline == ()  # caught in the window...
    (proc / "200" / "cmdline").write_bytes(b"java\0-jar\0app.jar\0")
    sampler.sample()  # ...and read again at the next sample
    got = sampler.cache.get(200)
    assert got is not None
    assert (got[0].comm, got[0].cmdline) == ("java", ("java", "-jar", "app.jar"))


def test_kernel_threads_and_zombies_are_described_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No command line is theirs to wait for: they are not read again for one."""
    proc = _fake_proc(tmp_path / "proc", {})
    for pid, state, flags in ((2, "S", 0x00208040), (900, "Z", 0)):
        d = proc / str(pid)
        d.mkdir()
        fields = [state, *["0"] * 5, str(flags), *["0"] * 12, "100", "0", "0", *["0"] * 30]
        (d / "stat").write_text(f"{pid} (worker) {' '.join(fields)}\n")
        (d / "cmdline").write_bytes(b"")
        (d / "cgroup").write_text("0::/\n")
    sampler = Sampler(proc, tmp_path)
    described: list[int] = []
    real = Sampler._describe

    def counting(self: Sampler, pid: int, start: int, comm: str) -> ProcInfo:
        described.append(pid)
        return real(self, pid, start, comm)

    monkeypatch.setattr(Sampler, "_describe", counting)
    for _ in range(3 * sampler.cache.refresh_every):
        sampler.sample()
    assert sorted(described) == [2, 900]


def test_a_real_exec_is_seen() -> None:
    """A real `sh` that execs `sleep`: the cache then holds sleep's name and command line."""
    import subprocess

    proc = subprocess.Popen(["sh", "-c", "read go; exec sleep 60"], stdin=subprocess.PIPE)
    try:
        sampler = Sampler()
        sampler.sample()
        got = sampler.cache.get(proc.pid)
        assert got is not None
        assert got[0].comm == "sh"
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        comm = Path(f"/proc/{proc.pid}/comm")
        while comm.read_text().strip() != "sleep":
            assert proc.poll() is None
        for _ in range(sampler.cache.refresh_every):
            sampler.sample()
        got = sampler.cache.get(proc.pid)
        assert got is not None
        assert (got[0].comm, got[0].cmdline) == ("sleep", ("sleep", "60"))
        assert len(got[1]) == 1 + sampler.cache.refresh_every  # the sh's reading is kept
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("vmstat", "count"),
    [
        ("nr_free_pages 5\noom_kill_other 9\noom_kill 7\npgfault 1\n", 7),
        ("oom_kill 12", 12),  # first and last, no newline
        ("nr_free_pages 5\n", None),  # before 4.13
        ("oom_kill x\n", None),
    ],
)
def test_the_kernels_oom_kill_count(tmp_path: Path, vmstat: str, count: int | None) -> None:
    """/proc/vmstat's oom_kill, wherever it stands; None when the kernel counts none."""
    (tmp_path / "vmstat").write_text(vmstat)
    assert Sampler(proc_root=tmp_path).vmstat_oom_kill() == count


def test_the_kernels_oom_kill_count_on_this_machine() -> None:
    """The real file gives the number its oom_kill line shows."""
    line = next(
        ln for ln in Path("/proc/vmstat").read_text().splitlines() if ln.startswith("oom_kill ")
    )
    assert Sampler().vmstat_oom_kill() == int(line.split()[1])
