"""The live path's shortcuts give what the general path gives, line for line."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oomwatch.kernel.lines import LineDecoder
from oomwatch.kernel.parser import _KERNEL_LINES, quiet
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
