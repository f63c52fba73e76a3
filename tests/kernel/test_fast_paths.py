"""The live path's shortcuts give what the general path gives, line for line."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oomwatch.kernel.lines import LineDecoder, plain_kmsg_parts
from oomwatch.kernel.parser import _KERNEL_LINES, quiet, quiet_record
from oomwatch.kernel.report import MAX_GAP_LINES
from oomwatch.kernel.scan import LogScanner
from oomwatch.kernel.wrapping import mentions_kill
from tests.conftest import CORPUS

CORPUS_TEXTS = sorted(
    {
        line.decode("utf-8", "backslashreplace")
        for path in sorted(CORPUS.glob("*.log"))
        for line in path.read_bytes().splitlines()
    }
)
# pieces of the messages handlers take, to build texts near their edges
PIECES = [
    "invoked oom-killer:",
    "Killed process 12 (a)",
    "oom-kill:",
    "ill process ",
    " score ",
    "Out of memory and no killable processes",
    "[",
    "CPU: ",
    "Pid: ",
    " cpuset=",
    " mems_allowed=",
    "Task in ",
    ": usage ",
    "swap",
    "Free swap",
    "Total swap",
    "Tasks in ",
    "Memory limit reached of cgroup ",
    "Kill process",
    "sending SIG",
    "killing process",
    "Killed /",
    "Marked /",
    "oom",
    "process",
    " ",
]
Result = tuple[str, list[dict[str, Any]], tuple[int, ...]]  # a file, its kills, its counts
texts = st.one_of(
    st.sampled_from(CORPUS_TEXTS),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=6).map("".join),
    st.text(max_size=60),
)


@settings(max_examples=2000)
@given(texts)
def test_a_quiet_line_is_one_no_handler_takes_and_tells_of_no_kill(text: str) -> None:
    """`quiet` lets the parser pass a line over: only lines nothing would have read."""
    if quiet(text):
        assert not any(applies(text) for applies, _ in _KERNEL_LINES), text
        assert not mentions_kill(text), text


def test_passing_quiet_lines_over_changes_no_record_and_no_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every corpus file gives the same kills and counts with and without the shortcut."""
    from oomwatch.kernel import parser

    def results() -> list[Result]:
        out: list[Result] = []
        for path in sorted(CORPUS.glob("*.log")):
            scanner = LogScanner()
            kills = list(scanner.scan_lines(path.read_bytes().splitlines()))
            s = scanner.stats
            counts = (s.lines, s.kills, s.malformed, s.unread, s.reports_without_kill)
            out.append((path.name, [k.to_dict() for k in kills], counts))
        return out

    fast = results()
    monkeypatch.setattr(parser, "quiet", lambda _text: False)
    assert results() == fast
    assert sum(len(kills) for _, kills, _ in fast) > 0


def test_most_of_a_real_report_is_quiet() -> None:
    """The call trace, registers and memory statistics of a report are passed over."""
    loud = [t for t in CORPUS_TEXTS if not quiet(t)]
    assert 0 < len(loud) < len(CORPUS_TEXTS) / 2
    assert not quiet("Memory cgroup out of memory: Killed process 1 (x) total-vm:1kB")
    assert quiet("dump_stack_lvl+0x59/0x90")
    assert quiet("RAX: 0000000000000078 RBX: 0000000000100000 RCX: 0000000000033030")
    # and from the raw record, as /dev/kmsg gives it
    assert quiet_record(b"4,2693185,5910161337,-; dump_stack_lvl+0x59/0x90") == 5910.161337
    assert quiet_record(b"6,2693215,5910161467,-;rss 33480704") == 5910.161467
    assert quiet_record(b"3,2693260,5910161547,-;Out of memory: Killed process 1") is None
    assert quiet_record(b"6,2693258,5910161525,-;[   4485]     0  4485    12448") is None


record_heads = st.tuples(
    st.integers(0, 30),
    st.integers(0, 10**12),
    st.integers(0, 10**13),
    st.sampled_from(["-", "c", "+", "-,caller=T12", "x"]),
)
bodies = st.one_of(
    st.sampled_from(CORPUS_TEXTS),
    st.text(max_size=40),
    st.text(alphabet=" \t\x1c\x1f\x0b\x85\xa0ab\\x0a;,[", max_size=12),
    st.sampled_from([" SUBSYSTEM=memory", "a\\x0ab", "\\x1b[31m red", "x\x00y", "  ", ""]),
)


def _meta(m: object) -> tuple[object, ...]:
    fields = ("fmt", "uptime_s", "wall", "host", "origin", "prio", "seq")
    return tuple(getattr(m, f) for f in fields)


@settings(max_examples=3000)
@given(record_heads, bodies)
def test_a_record_read_as_quiet_from_its_bytes_is_plain_and_quiet(
    head: tuple[int, int, int, str], body: str
) -> None:
    """`quiet_record` (no text made) passes only what `plain_kmsg_parts` and `quiet` pass.

    It may send a rare quiet one (a tab, a stray carriage return) the long way: the
    test below holds that most records of real reports take the short one.
    """
    prio, seq, stamp, flags = head
    raw = f"{prio},{seq},{stamp},{flags};{body}".encode()
    uptime = quiet_record(raw)
    parts = plain_kmsg_parts(raw)
    if uptime is not None:
        assert parts is not None, raw
        assert quiet(parts[0]), raw
        assert uptime == parts[3]


@settings(max_examples=2000)
@given(st.lists(st.tuples(record_heads, bodies), min_size=1, max_size=6))
def test_plain_kmsg_records_decode_as_the_general_path_decodes_them(
    records: list[tuple[tuple[int, int, int, str], str]],
) -> None:
    """Raw kmsg bytes (the shortcut for plain records) decode as their text does (no shortcut)."""
    fast, general = LineDecoder(), LineDecoder()
    for (prio, seq, stamp, flags), body in records:
        raw = f"{prio},{seq},{stamp},{flags};{body}".encode()
        text = raw.decode("utf-8", "backslashreplace")
        assert fast.decode(raw, 3) == general.decode(text, 3), raw
    assert fast.flush() == general.flush()
    # what a stampless line after them inherits (the shortcut keeps the line itself)
    assert _meta(fast._last) == _meta(general._last)


def _as_kmsg(path_bytes: bytes) -> list[bytes]:
    """A saved log's lines as /dev/kmsg would give them: one record each, stamps kept."""
    decoder = LineDecoder()
    out: list[bytes] = []
    for n, raw in enumerate(path_bytes.splitlines()):
        for line in decoder.decode(raw, n):
            stamp = round((line.uptime_s if line.uptime_s is not None else n) * 1e6)
            prio = 6 if line.prio is None else line.prio & 7
            text = line.text.encode("utf-8", "backslashreplace")
            out.append(b"%d,%d,%d,-;" % (prio, len(out), stamp) + text)
    return out


def _count_passed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the runs of records the parser is told it passed over, from now on."""
    from oomwatch.kernel.parser import OomParser

    passed: list[int] = []
    count = OomParser.passed

    def counting(self: OomParser, records: int) -> None:
        passed.append(records)
        count(self, records)

    monkeypatch.setattr(OomParser, "passed", counting)
    return passed


def test_passing_report_records_over_changes_no_record_and_no_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every corpus file as kmsg records, live: the same kills and counts without the shortcut."""
    from oomwatch.kernel.parser import OomParser

    # a report left open, then records a minute later, when it is stale: the first of
    # them closes it, and the rest are held as outside any report (not counted)
    late = [
        b"4,1,100000000,-;app invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0,"
        b" oom_score_adj=0",
        b"6,2,100000001,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,"
        b"mems_allowed=0,global_oom,task_memcg=/,task=late,pid=77,uid=0",
        b"4,3,100000100,-; dump_stack_lvl+0x59/0x90",
        *(b"6,%d,160000000,-;total_cache %d" % (4 + i, i) for i in range(5)),
    ]
    # a report whose gap runs out within one batch: the record past it is fed
    header = late[:2]
    long_gap = [
        *header,
        *(b"6,%d,100000002,-;total_rss %d" % (3 + i, i) for i in range(MAX_GAP_LINES + 40)),
        b"3,9999,100000003,-;Memory cgroup out of memory: Killed process 77 (late) "
        b"total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB "
        b"oom_score_adj:0",
    ]
    inputs = [("stale", late), ("long gap", long_gap)] + [
        (p.name, _as_kmsg(p.read_bytes())) for p in sorted(CORPUS.glob("*.log"))
    ]

    def results() -> list[Result]:
        out: list[Result] = []
        for (name, records), size in itertools.product(inputs, (16, 4096)):
            scanner = LogScanner()
            kills = [
                k
                for i in range(0, len(records), size)
                for k in scanner.feed_live(records[i : i + size])
            ]
            kills += scanner.close()
            s = scanner.stats
            counts = (s.lines, s.kills, s.malformed, s.unread, s.reports_without_kill)
            out.append((name, [k.to_dict() for k in kills], counts))
        return out

    passed = _count_passed(monkeypatch)
    fast = results()
    lines = sum(c[0] for _, _, c in fast)
    assert sum(passed) > lines / 3  # a report's trace, registers and statistics: passed over
    monkeypatch.setattr(OomParser, "pass_gate", lambda _self: None)
    assert results() == fast
    assert sum(len(kills) for _, kills, _ in fast) >= 20


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_every_quiet_record_of_an_open_report_is_passed_over(
    monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Quiet records before and after a loud one inside a report: none is fed, in any batches."""
    quiet_lines = [b"4,%d,100000%03d,-; dump_stack_lvl+0x59/0x90" % (i, i) for i in range(10)]
    records = [
        b"4,1,100000000,-;app invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0,"
        b" oom_score_adj=0",
        *quiet_lines,
        b"4,20,100000500,-;CPU: 0 PID: 77 Comm: app Not tainted 6.1.0 #1",
        *quiet_lines,
        b"3,40,100000900,-;Out of memory: Killed process 77 (app) total-vm:1kB, anon-rss:1kB,"
        b" file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0",
    ]
    passed = _count_passed(monkeypatch)
    scanner = LogScanner()
    kills = [
        k for i in range(0, len(records), size) for k in scanner.feed_live(records[i : i + size])
    ]
    assert [k.victim.pid for k in kills + scanner.close()] == [77]
    assert sum(passed) == 20
    assert scanner.stats.lines == len(records)
