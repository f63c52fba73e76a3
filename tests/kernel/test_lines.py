"""Line formats are recognised per line and reduced to message text plus metadata."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from oomwatch.kernel.lines import LineDecoder
from oomwatch.model import KernelLine

REF = datetime(2024, 6, 30)
KILL = "Killed process 1 (x) total-vm:1kB, anon-rss:2kB, file-rss:3kB"


def one(raw: str | bytes, decoder: LineDecoder | None = None) -> KernelLine:
    """The single line a raw line decodes to."""
    lines = (decoder or LineDecoder(reference=REF)).decode(raw, 7)
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize(
    ("raw", "fmt", "uptime", "host", "origin"),
    [
        (f"6,22743,6115623303887,-;{KILL}", "kmsg", 6115623.303887, None, "kernel"),
        (f"6,22743,6115623303887,-,caller=T1234;{KILL}", "kmsg", 6115623.303887, None, "kernel"),
        (f"[  123.456789] {KILL}", "dmesg", 123.456789, None, "kernel"),
        (f"[  123.456789][ T1234] {KILL}", "dmesg", 123.456789, None, "kernel"),
        (f"[Fri Jan 15 08:35:34 2021] {KILL}", "dmesg-T", None, None, "kernel"),
        (
            f"Sep 13 08:46:02 railers kernel: [1174606.629606] {KILL}",
            "syslog",
            1174606.629606,
            "railers",
            "kernel",
        ),
        (f"Sep 13 08:46:02 railers kernel: {KILL}", "syslog", None, "railers", "kernel"),
        (
            f"2023-10-12T19:00:20.123456+00:00 node1 kernel: [ 8523.347333] {KILL}",
            "syslog",
            8523.347333,
            "node1",
            "kernel",
        ),
        (f"2023-10-12T19:00:20+0000 node1 kernel: {KILL}", "syslog", None, "node1", "kernel"),
        (f"Oct 12 19:00:20.884452 node1 kernel: {KILL}", "syslog", None, "node1", "kernel"),
        (f"[   77.740597] node1 kernel: {KILL}", "journal", 77.740597, "node1", "kernel"),
        (f"2021-01-15T08:35:34,123456+01:00 {KILL}", "dmesg-T", None, None, "kernel"),
        (f"kern  :err   : [  123.4] {KILL}", "dmesg", 123.4, None, "kernel"),
        (f"<3>[  123.400000] {KILL}", "dmesg", 123.4, None, "kernel"),
        (f"> > Sep 13 08:46:02 railers kernel: {KILL}", "syslog", None, "railers", "kernel"),
        (f"    {KILL}", "bare", None, None, "kernel"),
        (KILL, "bare", None, None, "kernel"),
    ],
)
def test_formats(raw: str, fmt: str, uptime: float | None, host: str | None, origin: str) -> None:
    """Each format yields the bare message and the stamps, host and origin it carried."""
    line = one(raw)
    assert line.text == KILL
    assert line.fmt == fmt
    assert line.uptime_s == (pytest.approx(uptime) if uptime is not None else None)
    assert line.host == host
    assert line.origin == origin
    assert line.lineno == 7


@pytest.mark.parametrize(
    ("raw", "wall"),
    [
        (f"[Fri Jan 15 08:35:34 2021] {KILL}", datetime(2021, 1, 15, 8, 35, 34)),
        (f"[dim. 19 avril 10:11:12 2020] {KILL}", datetime(2020, 4, 19, 10, 11, 12)),
        (f"[二 9月  3 10:00:00 2019] {KILL}", datetime(2019, 9, 3, 10, 0, 0)),
        (f"[Di Mär  5 01:02:03 2024] {KILL}", datetime(2024, 3, 5, 1, 2, 3)),
        (f"апр 28 01:23:30 PC kernel: {KILL}", datetime(2024, 4, 28, 1, 23, 30)),
        (f"avril 28 01:23:30 PC kernel: {KILL}", datetime(2024, 4, 28, 1, 23, 30)),
        (f"jun 28 01:23:30 PC kernel: {KILL}", datetime(2024, 6, 28, 1, 23, 30)),
        # a month after the reference's month is from the year before
        (f"Dec 31 23:59:59 PC kernel: {KILL}", datetime(2023, 12, 31, 23, 59, 59)),
    ],
)
def test_localized_wall_times(raw: str, wall: datetime) -> None:
    """Localized dates (French, Chinese, German, Russian) and the syslog year are read right."""
    line = one(raw)
    assert line.text == KILL
    assert line.wall == wall


def test_syslog_without_reference_has_no_invented_year() -> None:
    """Syslog prints no year: without a reference time, the wall time stays unknown."""
    line = one(f"Sep 13 08:46:02 railers kernel: {KILL}", LineDecoder())
    assert line.wall is None


def test_kmsg_escapes_and_embedded_newlines() -> None:
    r"""Kmsg `\\xNN` escapes are decoded; an escaped newline splits the record into lines."""
    d = LineDecoder()
    lines = d.decode(r"6,5,1000000,-;Memory cgroup stats for /a:\x0aanon 4096\x0afile 0", 1)
    assert [ln.text for ln in lines] == ["Memory cgroup stats for /a:", "anon 4096", "file 0"]
    assert all(ln.seq == 5 for ln in lines)
    assert one(r"3,6,1,-;Killed process 9 (caf\xc3\xa9\x5c) total-vm:1kB", d).text == (
        "Killed process 9 (café\\) total-vm:1kB"
    )


def test_kmsg_user_facility_is_not_kernel() -> None:
    """A record user space wrote to /dev/kmsg (facility 1+) never counts as the kernel's."""
    line = one(f"12,99,1,-;{KILL}")
    assert line.origin != "kernel"
    assert not line.from_kernel


def test_kmsg_dictionary_lines_are_dropped() -> None:
    """` SUBSYSTEM=` lines after a kmsg record are properties, not text."""
    d = LineDecoder()
    d.decode(f"6,1,1,-;{KILL}")
    assert d.decode(" SUBSYSTEM=pci") == []
    assert d.decode(" DEVICE=+pci:0000:00:02.0") == []


def test_kmsg_continuation_fragments_are_joined() -> None:
    """`c` fragments and their `+` continuations make one line."""
    d = LineDecoder()
    assert d.decode("4,1,1,c;oom-kill:constraint=CONSTRAINT_NONE") == []
    lines = d.decode("4,2,1,+;,global_oom,task_memcg=/,task=x,pid=1,uid=0")
    assert [ln.text for ln in lines] == [
        "oom-kill:constraint=CONSTRAINT_NONE,global_oom,task_memcg=/,task=x,pid=1,uid=0"
    ]


def test_bare_lines_inherit_the_previous_stamp() -> None:
    """A stampless continuation line in dmesg output keeps the record's stamp."""
    d = LineDecoder()
    d.decode("[  5.000000] Mem-Info:")
    line = one("  active_file:30 inactive_file:38", d)
    assert line.uptime_s == 5.0
    assert line.fmt == "bare"


def test_journal_json() -> None:
    """Journalctl -o json: message, monotonic and realtime stamps, host, cursor, origin."""
    rec = {
        "__CURSOR": "s=abc;i=1",
        "__REALTIME_TIMESTAMP": "1700000000000000",
        "_SOURCE_MONOTONIC_TIMESTAMP": "8523347333",
        "_TRANSPORT": "kernel",
        "_HOSTNAME": "node1",
        "PRIORITY": "3",
        "MESSAGE": KILL,
    }
    line = one(json.dumps(rec))
    assert line.text == KILL
    assert line.fmt == "journal-json"
    assert line.uptime_s == pytest.approx(8523.347333)
    assert line.wall == datetime.fromtimestamp(1700000000, tz=UTC)
    assert line.cursor == "s=abc;i=1"
    assert line.host == "node1"
    assert line.from_kernel


def test_journal_json_binary_message_and_garbage() -> None:
    """Non-UTF-8 messages (byte arrays) are decoded with escapes; broken JSON is counted."""
    rec = {"MESSAGE": [75, 255, 108], "_TRANSPORT": "kernel"}
    assert one(json.dumps(rec)).text == "K\\xffl"
    d = LineDecoder()
    d.decode('{"MESSAGE": ', 1)
    assert d.malformed == 1


def test_non_kernel_syslog_lines_keep_their_tag() -> None:
    """A program's syslog line is attributed to the program, not the kernel."""
    line = one("Dec 18 19:34:56 desk systemd-oomd[840]: Killed /a.scope due to x")
    assert line.origin == "systemd-oomd"
    assert line.text == "Killed /a.scope due to x"


def test_invalid_utf8_is_kept_visible() -> None:
    r"""Invalid bytes become `\\xNN` text instead of an exception or silent loss."""
    assert one(b"[  1.000000] Killed process 1 (\xff\xfe) total-vm:1kB").text == (
        "Killed process 1 (\\xff\\xfe) total-vm:1kB"
    )


def test_a_syslog_date_without_a_year_is_never_in_the_future() -> None:
    """`Dec 30` read on 2 Dec is last year's; `Dec 1` read on 2 Dec is this year's."""
    ref = datetime(2026, 12, 2, 15, 0)
    d = LineDecoder(reference=ref)
    (late,) = d.decode("Dec 30 10:00:00 node kernel: x")
    (early,) = d.decode("Dec  1 10:00:00 node kernel: x")
    (jan,) = d.decode("Jan  5 10:00:00 node kernel: x")
    assert late.wall == datetime(2025, 12, 30, 10, 0)
    assert early.wall == datetime(2026, 12, 1, 10, 0)
    assert jan.wall == datetime(2026, 1, 5, 10, 0)
