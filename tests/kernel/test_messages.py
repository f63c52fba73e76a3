"""Single kernel messages of every version parse into their fields."""

from __future__ import annotations

import pytest

from oomwatch.kernel import messages as msg
from oomwatch.kernel.killed import parse_killed


@pytest.mark.parametrize(
    ("text", "comm", "gfp", "flags", "order", "adj", "nodemask"),
    [
        (
            "java invoked oom-killer: gfp_mask=0x201da, order=0, oomkilladj=0",
            "java",
            "0x201da",
            None,
            0,
            None,
            None,
        ),
        (
            "dsm_sa_datamgrd invoked oom-killer: gfp_mask=0x201da, order=0, oom_adj=0, "
            "oom_score_adj=0",
            "dsm_sa_datamgrd",
            "0x201da",
            None,
            0,
            0,
            None,
        ),
        (
            "Xorg invoked oom-killer: gfp_mask=0x240c0d0, order=3, oom_score_adj=0",
            "Xorg",
            "0x240c0d0",
            None,
            3,
            0,
            None,
        ),
        (
            "gunpowder-memho invoked oom-killer: gfp_mask=0x24000c0(GFP_KERNEL), order=0, "
            "oom_score_adj=0",
            "gunpowder-memho",
            "0x24000c0",
            "GFP_KERNEL",
            0,
            0,
            None,
        ),
        (
            "a b invoked oom-killer: gfp_mask=0x14200ca(GFP_HIGHUSER_MOVABLE), nodemask=(null),  "
            "order=0, oom_score_adj=-998",
            "a b",
            "0x14200ca",
            "GFP_HIGHUSER_MOVABLE",
            0,
            -998,
            "(null)",
        ),
        (
            "kswapd0 invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL|__GFP_ZERO), nodemask=0-1, "
            "order=-1, oom_score_adj=0",
            "kswapd0",
            "0x6000c0",
            "GFP_KERNEL|__GFP_ZERO",
            -1,
            0,
            "0-1",
        ),
    ],
)
def test_header_versions(
    text: str,
    comm: str,
    gfp: str,
    flags: str | None,
    order: int,
    adj: int | None,
    nodemask: str | None,
) -> None:
    """The header from 2.6.2x to 6.x, including the 4.10-4.18 double space."""
    h = msg.parse_header(text)
    assert h is not None
    assert (h.comm, h.gfp_mask, h.gfp_flags, h.order, h.oom_score_adj, h.nodemask) == (
        comm,
        gfp,
        flags,
        order,
        adj,
        nodemask,
    )


@pytest.mark.parametrize(
    ("text", "pid", "comm", "uid", "sizes", "adj"),
    [
        (
            "Killed process 3110 (VirtualBox) total-vm:7852720kB, anon-rss:125172kB, "
            "file-rss:5193968kB",
            3110,
            "VirtualBox",
            None,
            (7852720, 125172, 5193968, None),
            None,
        ),
        (
            "Killed process 20557, UID 188, (haproxy) total-vm:8560500kB, anon-rss:12468kB, "
            "file-rss:264kB",
            20557,
            "haproxy",
            188,
            (8560500, 12468, 264, None),
            None,
        ),
        (
            "Killed process 42452 (memcg_test_1), UID 0, total-vm:7296kB, anon-rss:96kB, "
            "file-rss:164kB, shmem-rss:0kB",
            42452,
            "memcg_test_1",
            0,
            (7296, 96, 164, 0),
            None,
        ),
        (
            "Memory cgroup out of memory: Killed process 265856 (Isolated Web Co) "
            "total-vm:2682760kB, anon-rss:0kB, file-rss:99584kB, shmem-rss:148kB, UID:1000 "
            "pgtables:636kB oom_score_adj:100",
            265856,
            "Isolated Web Co",
            1000,
            (2682760, 0, 99584, 148),
            100,
        ),
        (
            "Out of memory: Killed process 7 (a) total-vm:b) total-vm:1kB, anon-rss:2kB, "
            "file-rss:3kB, shmem-rss:4kB, UID:0 pgtables:5kB oom_score_adj:-5",
            7,
            "a) total-vm:b",
            0,
            (1, 2, 3, 4),
            -5,
        ),
        (
            "Killed process 1 ((sd-pam)) total-vm:1kB, anon-rss:2kB, file-rss:3kB",
            1,
            "(sd-pam)",
            None,
            (1, 2, 3, None),
            None,
        ),
        (
            "Killed process 12 (runc:[2:INIT])",
            12,
            "runc:[2:INIT]",
            None,
            (None, None, None, None),
            None,
        ),
    ],
)
def test_killed_layouts(
    text: str, pid: int, comm: str, uid: int | None, sizes: tuple[int | None, ...], adj: int | None
) -> None:
    """Upstream, RHEL6 and RHEL7 kill lines; comms with parentheses and a fake field inside."""
    k = parse_killed(text)
    assert k is not None
    assert (k.pid, k.comm, k.uid, k.oom_score_adj) == (pid, comm, uid, adj)
    assert (k.total_vm_kb, k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb) == sizes
    # a line that ends at the comm may have been wrapped there: the parser waits one line
    assert k.complete == (sizes != (None, None, None, None))


def test_quoted_kill_is_not_a_kill_line() -> None:
    """A kill quoted inside another program's message does not parse as a kill."""
    quoted = (
        "I1012 19:00:20.884452 3240 log_monitor.go:160] New status generated: "
        "&{Source:kernel-monitor Events:[{Reason:OOMKilling Message:Memory cgroup out of "
        "memory: Killed process 183960 (stress-ng-vm) total-vm:299192kB, anon-rss:9317"
    )
    assert parse_killed(quoted) is None


def test_truncated_kill_lines() -> None:
    """A kill line cut short is marked incomplete; one cut inside the pid is not read."""
    cut = parse_killed("Killed process 42469 (memcg_test_1), UID 0, total-vm:7296kB, anon-r")
    assert cut is not None
    assert (cut.pid, cut.comm, cut.complete) == (42469, "memcg_test_1", False)
    assert parse_killed("Killed process 424") is None


def test_summary_from_the_right() -> None:
    """task= may hold commas and spaces: pid and uid are taken from the end."""
    s = msg.parse_summary(
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=a,b,mems_allowed=0,"
        "oom_memcg=/x,y,task_memcg=/x,y/z,task=we,ird name,pid=12800,uid=1001"
    )
    assert s is not None
    assert (s.constraint, s.cpuset, s.oom_memcg, s.task_memcg) == (
        "CONSTRAINT_MEMCG",
        "a,b",
        "/x,y",
        "/x,y/z",
    )
    assert (s.task, s.pid, s.uid, s.global_oom) == ("we,ird name", 12800, 1001, False)


def test_summary_global_and_vendor_variants() -> None:
    """`global_oom` (no value), unknown constraints, and RHEL's empty constraint part."""
    s = msg.parse_summary(
        "oom-kill:constraint=CONSTRAINT_BPF_PSI_MEM,nodemask=(null),cpuset=/,"
        "mems_allowed=0,global_oom,task_memcg=/,task=x,pid=1,uid=0"
    )
    assert s is not None
    assert (s.constraint, s.global_oom, s.oom_memcg) == ("CONSTRAINT_BPF_PSI_MEM", True, None)
    v = msg.parse_summary(
        "oom-kill:,cpuset=abc,mems_allowed=0,oom_memcg=/k,task_memcg=/k/c,"
        "task=runc:[2:INIT],pid=12800,uid=0"
    )
    assert v is not None
    assert (v.constraint, v.cpuset, v.task) == (None, "abc", "runc:[2:INIT]")


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        (
            "[ pid ]   uid  tgid total_vm      rss cpu oom_adj oom_score_adj name",
            "[  624]     0   624     2763        0   1     -17         -1000 udevd",
            dict(
                pid=624, uid=0, total_vm_pages=2763, rss_pages=0, oom_score_adj=-1000, name="udevd"
            ),
        ),
        (
            "[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name",
            "[13536] 275858 13536  8389663      343   16267  8324326             0 memorymonster",
            dict(
                pid=13536,
                uid=275858,
                rss_pages=343,
                nr_ptes=16267,
                swapents=8324326,
                name="memorymonster",
            ),
        ),
        (
            "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
            "[ 265856]  1000 265856   670690    24933   651264     4224           100 "
            "Isolated Web Co",
            dict(
                pid=265856,
                pgtables_bytes=651264,
                swapents=4224,
                oom_score_adj=100,
                name="Isolated Web Co",
            ),
        ),
        (
            "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes "
            "swapents oom_score_adj name",
            "[  21502]     0 21502    55341    13852    12224     1628         0   163840        0"
            "             0 python3",
            dict(
                rss_pages=13852,
                rss_anon_pages=12224,
                rss_file_pages=1628,
                rss_shmem_pages=0,
                name="python3",
            ),
        ),
        (
            None,
            "[ 7030]   499  7030 73002208 14803448  114042     282        0             0 influxd",
            dict(
                pid=7030,
                uid=499,
                rss_pages=14803448,
                nr_ptes=114042,
                swapents=0,
                oom_score_adj=0,
                name="influxd",
            ),
        ),
    ],
)
def test_table_rows(header: str | None, row: str, expected: dict[str, object]) -> None:
    """Rows of every layout, misaligned wide columns, names with spaces, no header at all."""
    cols = msg.parse_table_header(header) if header else None
    parsed = msg.parse_row(row, cols)
    assert parsed is not None
    for key, value in expected.items():
        assert getattr(parsed, key) == value


def test_row_that_does_not_fit_its_header() -> None:
    """A row with too few columns is refused, not misread."""
    cols = msg.parse_table_header(
        "[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name"
    )
    assert msg.parse_row("[ 1]  0 1 2", cols) is None
    assert msg.parse_row("[ 1]  0 1 2 x 4 5 6 name", cols) is None
