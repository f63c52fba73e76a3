"""The report state machine: one record per real kill, context joined, nothing invented."""

from __future__ import annotations

import pytest

from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill

HEADER = (
    "[  100.000001] app invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
)
TABLE = [
    "[  100.000002] Tasks state (memory values in pages):",
    "[  100.000003] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents "
    "oom_score_adj name",
    "[  100.000004] [    10]  1000    10    50000    20000   200000        5           300 app",
    "[  100.000005] [    11]     0    11    90000    40000   300000        0          -999 db",
]
MEMCG = "[  100.000001] memory: usage 262144kB, limit 262144kB, failcnt 12"
SUMMARY = (
    "[  100.000006] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
    "mems_allowed=0,oom_memcg=/svc,task_memcg=/svc/app,task=app,pid=10,uid=1000"
)
KILLED = (
    "[  100.000007] Memory cgroup out of memory: Killed process 10 (app) total-vm:200000kB, "
    "anon-rss:79000kB, file-rss:1000kB, shmem-rss:0kB, UID:1000 pgtables:196kB "
    "oom_score_adj:300"
)


def parse(lines: list[str]) -> tuple[list[OomKill], LogScanner]:
    """Every kill in `lines`, and the scanner (for its counts)."""
    scanner = LogScanner()
    return list(scanner.scan_lines(lines)), scanner


def test_full_report() -> None:
    """Header, memcg, table, summary and kill line join into one record."""
    kills, _ = parse([HEADER, MEMCG, *TABLE, SUMMARY, KILLED])
    assert len(kills) == 1
    k = kills[0]
    assert (k.victim.pid, k.victim.comm, k.victim.uid, k.victim.oom_score_adj) == (
        10,
        "app",
        1000,
        300,
    )
    assert k.trigger is not None
    assert k.trigger.comm == "app"
    assert k.memcg is not None
    assert k.memcg.limit_kb == 262144
    assert (k.scope, k.oom_memcg, k.task_memcg) == ("memcg", "/svc", "/svc/app")
    assert [c.pid for c in k.top_consumers] == [11, 10]
    assert k.tasks_complete
    assert k.victim.swap_kb == 20


def test_unrelated_lines_inside_a_report() -> None:
    """Interleaved lines from other subsystems do not break a report."""
    noise = "[  100.000003] docker0: port 2(veth1) entered blocking state"
    kills, _ = parse(
        [
            HEADER,
            noise,
            MEMCG,
            noise,
            TABLE[0],
            TABLE[1],
            noise,
            TABLE[2],
            TABLE[3],
            SUMMARY,
            noise,
            KILLED,
        ]
    )
    assert len(kills) == 1
    assert len(kills[0].tasks) == 2
    assert kills[0].trigger is not None


def test_header_without_kill_yields_nothing() -> None:
    """A report cut before its kill line, or ending in `no killable processes`, is no kill."""
    assert parse([HEADER, MEMCG, *TABLE])[0] == []
    no_kill = [
        HEADER,
        MEMCG,
        TABLE[0],
        TABLE[1],
        "[  100.000009] Out of memory and no killable processes...",
    ]
    kills, scanner = parse(no_kill)
    assert kills == []
    assert scanner.stats.reports_without_kill == 1


def test_selection_line_alone_is_not_a_kill() -> None:
    """`Kill process ... or sacrifice child` without its `Killed process` line is not a kill."""
    kills, _ = parse(["Out of memory: Kill process 5 (x) score 900 or sacrifice child"])
    assert kills == []


def test_sacrificed_child_is_the_victim() -> None:
    """Before 5.1 a child may be killed instead of the selected task: the Killed line wins."""
    kills, _ = parse(
        [
            "Out of memory: Kill process 5 (parent) score 900 or sacrifice child",
            "Killed process 6 (child) total-vm:10kB, anon-rss:5kB, file-rss:1kB",
        ]
    )
    assert [(k.victim.pid, k.victim.comm, k.selected_score) for k in kills] == [(6, "child", 900)]


def test_reaper_does_not_overwrite_the_kill() -> None:
    """oom_reaper's residual sizes never replace the kill line's."""
    kills, _ = parse(
        [
            KILLED,
            "[  100.100000] oom_reaper: reaped process 10 (app), now "
            "anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
        ]
    )
    assert len(kills) == 1
    assert kills[0].victim.anon_rss_kb == 79000


def test_storm_kills_do_not_inherit_the_previous_report() -> None:
    """Rate-limited kills that print only their kill line get no context from an earlier report."""
    later = KILLED.replace("Killed process 10 (app)", "Killed process 12 (app)")
    kills, _ = parse([HEADER, MEMCG, *TABLE, SUMMARY, KILLED, later])
    assert [k.victim.pid for k in kills] == [10, 12]
    assert kills[1].trigger is None
    assert kills[1].memcg is None
    assert kills[1].tasks == ()


def test_group_kill_members_share_the_report() -> None:
    """memory.oom.group kills every member: each gets the report's context, even a repeat."""
    group = "[  100.000008] Tasks in /svc are going to be killed due to memory.oom.group set"
    member = KILLED.replace("Killed process 10 (app)", "Killed process 11 (db)")
    again = KILLED.replace("[  100.000007]", "[  100.000009]")
    kills, _ = parse([HEADER, MEMCG, *TABLE, SUMMARY, KILLED, group, member, again])
    assert [k.victim.pid for k in kills] == [10, 11, 10]
    assert all(k.oom_memcg == "/svc" and k.trigger is not None for k in kills)


def test_the_same_record_read_twice_is_one_kill() -> None:
    """Overlapping pastes (the same stamped line twice) give one record."""
    kills, _ = parse([HEADER, SUMMARY, KILLED, HEADER, SUMMARY, KILLED])
    assert len(kills) == 1


def test_summary_only_is_a_kill() -> None:
    """When only the summary survived (a filtered log), it proves the kill; sizes stay unknown."""
    kills, _ = parse([SUMMARY])
    assert len(kills) == 1
    k = kills[0]
    assert (k.victim.pid, k.victim.comm, k.victim.uid) == (10, "app", 1000)
    assert k.victim.anon_rss_kb is None
    assert k.victim.oom_score_adj is None


def test_summary_split_over_two_records() -> None:
    """The first 5.0 kernels printed `,global_oom` as a record of its own."""
    kills, _ = parse(
        [
            "[  5.000000] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,"
            "mems_allowed=0",
            "[  5.000001] ,global_oom,task_memcg=/user.slice,task=big,pid=77,uid=0",
            "[  5.000002] Out of memory: Killed process 77 (big) total-vm:1kB, anon-rss:2kB, "
            "file-rss:3kB, shmem-rss:0kB",
        ]
    )
    assert len(kills) == 1
    assert (kills[0].scope, kills[0].task_memcg, kills[0].constraint) == (
        "global",
        "/user.slice",
        "CONSTRAINT_NONE",
    )


def test_hand_wrapped_lines_are_rejoined() -> None:
    """A pasted report wrapped mid-line still gives the whole kill and summary."""
    kills, _ = parse(
        [
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a",
            "bc,task_memcg=/abc,task=w,pid=3,uid=0",
            "Memory cgroup out of memory: Killed process 3 (w) total-vm:100kB, anon-rss:50kB,",
            "file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:0",
        ]
    )
    assert len(kills) == 1
    k = kills[0]
    assert (k.oom_memcg, k.victim.file_rss_kb, k.victim.pgtables_kb) == ("/abc", 4, 8)


def test_stale_context_is_not_joined() -> None:
    """A header an hour before a kill line belongs to another report."""
    kills, _ = parse(
        [HEADER, "[ 3700.000000] Killed process 9 (late) total-vm:1kB, anon-rss:1kB, file-rss:1kB"]
    )
    assert len(kills) == 1
    assert kills[0].trigger is None


def test_malformed_lines_are_counted_not_fatal() -> None:
    """A broken row or summary is counted; the kill is still reported; the table is partial."""
    kills, scanner = parse(
        [
            HEADER,
            TABLE[1],
            "[  100.000004] [    10]  1000  garbage app",
            TABLE[3],
            SUMMARY.replace(",pid=10,uid=1000", ",pid=x"),
            KILLED,
        ]
    )
    assert len(kills) == 1
    assert scanner.stats.malformed == 2
    assert kills[0].tasks_complete is False


def test_kill_in_another_programs_line_is_ignored() -> None:
    """A kill quoted by another program (syslog tag, or a bare sentence) is not a kill."""
    kills, _ = parse(
        [
            "Oct 12 19:00:20 n1 npd[3240]: Memory cgroup out of memory: Killed process 1 (x) "
            "total-vm:1kB, anon-rss:1kB, file-rss:1kB",
            "kubelet says: Killed process 2 (y) total-vm:1kB, anon-rss:1kB, file-rss:1kB",
        ]
    )
    assert kills == []


def test_earlyoom_and_oomd_records() -> None:
    """User-space killers give records with their own killer, signal and reason."""
    kills, _ = parse(
        [
            "low memory! at or below SIGTERM limits: mem 10 %, swap 10 %",
            'sending SIGTERM to process 4242 uid 1000 "tail": badness 860, VmRSS 3145 MiB',
            "Dec 18 19:34:56 d systemd-oomd[840]: Killed /user.slice/app.scope due to memory used "
            "(15.4G) / total (15.5G) and swap used (7.9G) / total (8.0G) being more than 90.00%",
        ]
    )
    assert [k.killer for k in kills] == ["earlyoom", "systemd-oomd"]
    e, o = kills
    assert (e.victim.pid, e.victim.comm, e.victim.uid, e.signal, e.victim.rss_kb) == (
        4242,
        "tail",
        1000,
        "SIGTERM",
        3145 * 1024,
    )
    assert e.reason == "at or below SIGTERM limits: mem 10 %, swap 10 %"
    assert o.task_memcg == "/user.slice/app.scope"
    assert o.systemd_unit == "app.scope"
    assert o.reason is not None
    assert o.reason.startswith("memory used")


@pytest.mark.fault
def test_forged_userspace_kill_in_kmsg_is_ignored() -> None:
    """A user-space killer line written into /dev/kmsg is not believed."""
    kills, _ = parse(['14,5,1,-;sending SIGKILL to process 1 uid 0 "init": badness 1, VmRSS 1 MiB'])
    assert kills == []


def _scan(lines: list[str]) -> tuple[list[OomKill], LogScanner]:
    scanner = LogScanner()
    return list(scanner.scan_lines(lines)), scanner


def test_values_outside_what_the_kernel_prints_are_null() -> None:
    """An oom_score_adj outside -1000..1000 is null and counted; pid 0 is no victim."""
    kills, scanner = _scan(
        [
            "[ 5.0] Out of memory: Killed process 12 (x) total-vm:1kB, anon-rss:1kB, "
            "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:180224",
            "[ 6.0] Out of memory: Killed process 0 (swapper) total-vm:1kB, anon-rss:1kB, "
            "file-rss:0kB, shmem-rss:0kB",
        ]
    )
    assert [k.victim.pid for k in kills] == [12]
    assert kills[0].victim.oom_score_adj is None
    assert kills[0].victim.anon_rss_kb == 1  # the fields printed whole are kept
    assert scanner.stats.malformed == 2


def test_a_row_cut_short_gives_no_wrong_number() -> None:
    """A headerless row cut before its name is not read in a layout that misplaces a column."""
    kills, _ = _scan(
        [
            "[ 1.0] [  21502]     0 21502    55341    13852    12224     1628         0   180224",
            "[ 1.1] Memory cgroup out of memory: Killed process 21502 (python3) total-vm:221364kB, "
            "anon-rss:48896kB, file-rss:6512kB, shmem-rss:0kB, UID:0 pgtables:160kB",
        ]
    )
    (k,) = kills
    assert k.victim.oom_score_adj is None  # not 180224 from the pgtables column
    assert all(t.oom_score_adj in range(-1000, 1001) for t in k.tasks if t.oom_score_adj)


def test_a_cut_summary_keeps_what_it_printed_whole() -> None:
    """`oom-kill:` cut in its task_memcg still gives the constraint; the cut value is dropped."""
    kills, scanner = _scan(
        [
            "[ 1.0] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
            "oom_memcg=/kubepods/pod1,task_memcg=/kubepods/po",
            "[ 1.1] Memory cgroup out of memory: Killed process 7 (app) total-vm:1kB, "
            "anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0",
        ]
    )
    (k,) = kills
    assert k.constraint == "CONSTRAINT_MEMCG"
    assert k.oom_memcg == "/kubepods/pod1"
    assert k.task_memcg is None  # "/kubepods/po" was cut: never a wrong path
    assert scanner.stats.malformed == 1


def _journal_json(message: str, **fields: str) -> str:
    import json

    return json.dumps({"MESSAGE": message, "__REALTIME_TIMESTAMP": "1764000000000000", **fields})


FORGED_KILL = (
    "Out of memory: Killed process 1 (FAKE1) total-vm:1000kB, anon-rss:500kB, file-rss:0kB, "
    "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0"
)


@pytest.mark.parametrize(
    ("fields", "believed"),
    [
        ({"_TRANSPORT": "kernel", "SYSLOG_FACILITY": "0", "SYSLOG_IDENTIFIER": "kernel"}, True),
        # a process wrote it to /dev/kmsg: journald says kernel transport, facility 1
        ({"_TRANSPORT": "kernel", "SYSLOG_FACILITY": "1", "SYSLOG_IDENTIFIER": "kernel"}, False),
        # `logger -t kernel`: the identifier alone
        ({"_TRANSPORT": "syslog", "SYSLOG_FACILITY": "1", "SYSLOG_IDENTIFIER": "kernel"}, False),
        ({"_TRANSPORT": "stdout", "SYSLOG_IDENTIFIER": "kernel"}, False),
        ({"SYSLOG_IDENTIFIER": "kernel"}, True),  # a pasted record without its transport
    ],
)
def test_journal_kernel_text_needs_the_kernel_transport_and_facility(
    fields: dict[str, str], believed: bool
) -> None:
    """Only the kernel's own records are kernel kills; forgeries through journald are not."""
    kills, _ = _scan([_journal_json(FORGED_KILL, **fields)])
    assert [k.victim.comm for k in kills] == (["FAKE1"] if believed else [])


def test_a_userspace_killer_line_written_to_kmsg_is_not_believed_from_the_journal() -> None:
    """An earlyoom line that reached journald through /dev/kmsg is a forgery."""
    line = 'sending SIGKILL to process 1 uid 0 "init": badness 1, VmRSS 1 MiB'
    forged = _journal_json(line, _TRANSPORT="kernel", SYSLOG_FACILITY="1")
    real = _journal_json(line, _TRANSPORT="stdout", SYSLOG_IDENTIFIER="earlyoom")
    assert _scan([forged])[0] == []
    assert [k.killer for k in _scan([real])[0]] == ["earlyoom"]
