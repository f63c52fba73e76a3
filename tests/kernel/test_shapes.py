"""Every shape a person pastes or a tool renders gives the kills of the original report.

The reports are the real ones of the corpus; each test rewrites them the way a
person or a tool does (paste marks, line numbers, a removed column, a mail
client's wrap, util-linux `dmesg` in each time format) and compares the kills,
field for field, on both the line path and the fast path. The dmesg renderings
come from the real `dmesg` where it is installed, and their layouts are held to
util-linux's own test fixtures (`tests/data/util-linux/`, from util-linux's
`tests/ts/dmesg` and `tests/expected/dmesg`).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from oomwatch.kernel.lines import LineDecoder
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import KernelLine, OomKill
from tests.conftest import CORPUS, DATA

UTIL_LINUX = DATA / "util-linux"
REPORTS = sorted(CORPUS.glob("*.log"))


def _fields(k: OomKill) -> tuple[object, ...]:
    v = k.victim
    return (
        k.killer,
        v.pid,
        v.comm,
        v.uid,
        v.anon_rss_kb,
        v.file_rss_kb,
        v.oom_score_adj,
        k.constraint,
        k.oom_memcg,
        k.task_memcg,
        k.processes_killed,
        k.memcg.limit_kb if k.memcg else None,
        k.trigger.comm if k.trigger else None,
    )


def _kills(text: str, *, fast: bool) -> list[tuple[object, ...]]:
    scanner = LogScanner()
    if fast:
        found = scanner.scan_stream(io.BytesIO(text.encode()))
    else:
        found = scanner.scan_lines(text.split("\n"))
    return [_fields(k) for k in found]


def _each_line(fn: Callable[[int, str], str]) -> Callable[[str], str]:
    return lambda text: "\n".join(fn(i, line) for i, line in enumerate(text.split("\n")))


def _wrap(line: str, indent: str) -> str:
    """Break a long kill, summary or oomd line at a space, as a mail client does."""
    keys = ("Killed process", "oom-kill:", "Killed /", "for killing due to")
    if len(line) <= 90 or not any(k in line for k in keys):
        return line
    cut = line.rfind(" ", 0, 90)
    return line[:cut] + "\n" + indent + line[cut + 1 :]


_SYSLOG_STAMP = r"(?m)^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
SHAPES: dict[str, Callable[[str], str]] = {
    "hash": _each_line(lambda _i, s: "# " + s),
    "dollar": _each_line(lambda _i, s: "$ " + s),
    "grep-n": _each_line(lambda i, s: f"{i + 100}{':' if i % 7 == 0 else '-'}{s}"),
    "line-bar": _each_line(lambda i, s: f"{i + 1:>5} | {s}"),
    "cat-n": _each_line(lambda i, s: f"{i + 1:>6}\t{s}"),
    "crlf": lambda t: t.replace("\n", "\r\n"),
    "no-hostname": lambda t: re.sub(_SYSLOG_STAMP + r"\S+ ", r"\1 ", t),
    "no-stamp-column": lambda t: re.sub(_SYSLOG_STAMP, "", t),
    "wrapped": _each_line(lambda _i, s: _wrap(s, "")),
    "wrapped-indented": _each_line(lambda _i, s: _wrap(s, "    ")),
}
# A raw /dev/kmsg record is one line by construction; nobody wraps it by hand.
_NOT_WRAPPED = ("kmsg",)


@pytest.mark.parametrize("fast", [False, True], ids=["lines", "fast"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("report", REPORTS, ids=[p.stem[:3] for p in REPORTS])
def test_pasted_shapes_keep_every_kill(report: Path, shape: str, fast: bool) -> None:
    """Each paste shape of each real report gives the same kills, field for field."""
    text = report.read_text()
    if shape.startswith("wrapped") and any(k in report.name for k in _NOT_WRAPPED):
        pytest.skip("raw kmsg records are never hand-wrapped")
    original = _kills(text, fast=False)
    assert original, "the corpus report itself gives kills"
    assert _kills(SHAPES[shape](text), fast=fast) == original


def _dmesg_input(report: Path) -> str | None:
    """The report's kernel lines in dmesg's own `-F` input format, when all carry an uptime."""
    decoder = LineDecoder()
    lines = [ln for raw in report.read_text().split("\n") for ln in decoder.decode(raw)]
    kernel = [ln for ln in lines if ln.from_kernel]
    if not kernel or any(ln.uptime_s is None for ln in kernel):
        return None
    return "".join(f"<{_prio(ln)}>[{ln.uptime_s:12.6f}] {ln.text}\n" for ln in kernel)


def _prio(line: KernelLine) -> int:
    return line.prio if line.prio is not None else 4


DMESG_REPORTS = [p for p in REPORTS if _dmesg_input(p) is not None]
DMESG_FLAGS = [
    "",
    "-d",
    "-e",
    "-x",
    "-r",
    "-T",
    "-t -d",
    "-T -d",
    "--color=always",
    "-x -d --color=always",
    "--time-format=delta",
    "--time-format=reltime",
    "--time-format=notime",
    "--time-format=ctime",
    "--time-format=iso",
    "--time-format=iso --time-format=delta",
    "--time-format=ctime --time-format=delta",
]


@pytest.mark.skipif(shutil.which("dmesg") is None, reason="util-linux dmesg is not installed")
@pytest.mark.parametrize("flags", DMESG_FLAGS)
@pytest.mark.parametrize("report", DMESG_REPORTS, ids=[p.stem[:3] for p in DMESG_REPORTS])
def test_real_dmesg_renderings(report: Path, flags: str, tmp_path: Path) -> None:
    """The real dmesg renders each report in each time format; the kills stay the same."""
    source = tmp_path / "kmsg.txt"
    source.write_text(_dmesg_input(report) or "")
    done = subprocess.run(
        ["dmesg", "-F", str(source), *flags.split()],
        capture_output=True,
        text=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    original = _kills(source.read_text(), fast=False)
    assert original
    for fast in (False, True):
        assert _kills(done.stdout, fast=fast) == original


def _messages(text: str) -> list[tuple[str, float | None]]:
    decoder = LineDecoder()
    out = [ln for raw in text.split("\n") for ln in decoder.decode(raw)]
    return [(ln.text, ln.uptime_s) for ln in out + decoder.flush()]


def _fixture(name: str) -> str:
    return (UTIL_LINUX / name).read_text()


def _input_messages() -> list[tuple[str, float | None]]:
    return _messages(_fixture("ts-dmesg-input"))


@pytest.mark.parametrize(
    ("fixture", "clock"),
    [
        ("expected-dmesg-delta", True),
        ("expected-dmesg-colors", True),
        ("expected-dmesg-timestamp-format-multiple", True),
        ("expected-dmesg-timestamp-format-delta", False),
        ("expected-dmesg-timestamp-format-delta-ctime", False),
        ("expected-dmesg-json", True),
    ],
)
def test_util_linux_fixtures(fixture: str, clock: bool) -> None:
    """util-linux's expected outputs decode to the messages (and uptimes) of its input."""
    want = _input_messages()
    got = _messages(_fixture(fixture))
    assert [t for t, _ in got] == [t for t, _ in want[: len(got)]]
    assert len(got) >= len(want) - 1  # colors.expected stops before the input's last record
    if clock:
        assert [u for _, u in got] == [u for _, u in want[: len(got)]]


def test_util_linux_kmsg_file_nul_separated() -> None:
    """`dmesg --kmsg-file` input (records separated by NUL) gives the records of its JSON."""
    expected = json.loads(_fixture("expected-dmesg-kmsg-file"))["dmesg"]
    got = _messages(_fixture("ts-dmesg-kmsg-input"))
    assert len(got) >= len(expected)
    firsts = [(r["msg"].split("\n")[0].strip(), r["time"]) for r in expected]
    assert [(t, round(u or 0, 6)) for t, u in got[: len(firsts)]] == firsts


def _as_dmesg_json(kmsg_input: str) -> str:
    """A report in `dmesg --json`'s layout, the layout util-linux's fixture holds."""
    records = []
    for line in kmsg_input.splitlines():
        m = re.fullmatch(r"<(\d+)>\[\s*([\d.]+)\] (.*)", line)
        assert m
        pri, time, msg = m.groups()
        records.append(
            f'{{\n         "pri": {pri},\n         "time": {float(time):12.6f},\n'
            f'         "msg": {json.dumps(msg)}\n      }}'
        )
    return '{\n   "dmesg": [\n      ' + ",".join(records) + "\n   ]\n}\n"


def test_dmesg_json_layout_matches_the_fixture() -> None:
    """The JSON rendering used below is byte for byte util-linux's own for the same input."""
    rendered = _as_dmesg_json(_fixture("ts-dmesg-input"))
    assert rendered == _fixture("expected-dmesg-json")


@pytest.mark.parametrize("report", DMESG_REPORTS, ids=[p.stem[:3] for p in DMESG_REPORTS])
def test_dmesg_json_reports(report: Path) -> None:
    """Each report as `dmesg --json` prints it gives the same kills."""
    source = _dmesg_input(report) or ""
    original = _kills(source, fast=False)
    for fast in (False, True):
        assert _kills(_as_dmesg_json(source), fast=fast) == original


def test_json_fields_of_user_facility_are_not_kernel() -> None:
    """A `dmesg -x --json` record of a user facility is not read as the kernel's."""
    text = (
        '{\n   "dmesg": [\n      {\n         "fac": "user",\n         "pri": "warn",\n'
        '         "time":    12.000000,\n'
        '         "msg": "Out of memory: Killed process 9 (x) total-vm:1kB, anon-rss:1kB, '
        'file-rss:0kB, shmem-rss:0kB"\n      }\n   ]\n}\n'
    )
    assert _kills(text, fast=False) == []


def test_a_quoted_kill_in_prose_is_not_a_kill() -> None:
    """A prefix with words that are no log column (a chat quote, a tool's field) is not stripped."""
    text = (
        'level=info msg="Memory cgroup out of memory: Killed process 12 (x) total-vm:1kB, '
        'anon-rss:1kB, file-rss:0kB, shmem-rss:0kB"\n'
        "the alert said Out of memory: Killed process 13 (y) total-vm:1kB, anon-rss:1kB, "
        "file-rss:0kB, shmem-rss:0kB\n"
    )
    assert _kills(text, fast=False) == []
    assert _kills(text, fast=True) == []


def test_an_unnamed_column_prefix_is_learned_for_the_report() -> None:
    """A column prefix no format names (`node-7 | `) is taken from the kill line for the rest."""
    original = (CORPUS / "002-ubuntu313-memcg-mem2.log").read_text()
    prefixed = "\n".join(
        f"node-7 | 12:00:0{i % 10} | {s}" for i, s in enumerate(original.split("\n"))
    )
    assert _kills(prefixed, fast=False) == _kills(original, fast=False)
