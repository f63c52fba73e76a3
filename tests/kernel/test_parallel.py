"""A large file scanned on two cores gives exactly the records of one sequential scan."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from oomwatch.kernel.parallel import FileScan, _split_point
from oomwatch.kernel.scan import LogScanner
from tests.conftest import CORPUS

REPORTS = [
    (CORPUS / n).read_text()
    for n in (
        "007-ubuntu1404-icecast-syslog.log",
        "001-rhel6-haproxy-global.log",
        "020-ubuntu1604-i915-order3-virtualbox.log",
        "027-rhel7-ltp-memcg-kill-storm.log",
    )
]
CHATTER = "May  1 10:00:{s:02d} node-{h} sshd[{p}]: Accepted publickey for deploy port {p}\n"
_UPTIME = re.compile(r"\[\s*(\d+\.\d+)\]")


def _log(path: Path, rng: random.Random, *, chunks: int, big_table_at: int | None = None) -> None:
    """Chatter with real reports among it, each copy at a later uptime."""
    with path.open("w") as f:
        for i in range(chunks):
            for _ in range(rng.randrange(50, 400)):
                f.write(
                    CHATTER.format(s=rng.randrange(60), h=rng.randrange(9), p=rng.randrange(9999))
                )
            report = _later(REPORTS[0] if i == big_table_at else rng.choice(REPORTS), 1e3 * (i + 1))
            if i == big_table_at:
                report = _long_table(report)
            f.write(report if report.endswith("\n") else report + "\n")


def _long_table(report: str) -> str:
    """The report with a task table long enough to straddle any split."""
    lines = report.splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if "pid ]" in line) + 1
    stamp = lines[at].split("] [", 1)[0] + "] "
    row = "{stamp}[{n:>5}]     0 {n:>5}     4868        0      13       89             0 filler\n"
    rows = [row.format(stamp=stamp, n=n) for n in range(10000, 19000)]
    return "".join(lines[:at] + rows + lines[at:])


def _later(report: str, shift: float) -> str:
    return _UPTIME.sub(lambda m: f"[{float(m.group(1)) + shift:12.6f}]", report)


def _sequential(path: Path) -> list[dict[str, object]]:
    with path.open("rb") as f:
        return [k.to_dict() for k in LogScanner().scan_stream(f)]


@pytest.mark.parametrize("seed", range(4))
def test_two_cores_give_the_sequential_records(seed: int, tmp_path: Path) -> None:
    """Split anywhere it may be split, the kills and their order are those of one pass."""
    path = tmp_path / "syslog"
    _log(path, random.Random(seed), chunks=40)
    scan = FileScan(path, min_size=0, quiet=2048)
    assert _split_point(path, 0, 2048) is not None  # the test does split the file
    got = [k.to_dict() for k in scan]
    want = _sequential(path)
    assert got == want
    assert scan.stats.kills == len(want) > 40


def test_a_report_across_the_split_is_read_once_and_whole(tmp_path: Path) -> None:
    """A task table longer than the quiet stretch around the split still gives one record."""
    path = tmp_path / "syslog"
    _log(path, random.Random(9), chunks=3, big_table_at=1)
    data = path.read_bytes()
    split = _split_point(path, 0, 1024)
    assert split is not None
    assert data.find(b" filler\n") < split < data.rfind(b" filler\n")  # inside the table
    got = [k.to_dict() for k in FileScan(path, min_size=0, quiet=1024)]
    want = _sequential(path)
    assert got == want
    assert max(len(k["tasks"]) for k in want) > 9000  # type: ignore[arg-type]


def test_a_repeat_across_the_split_is_dropped_as_in_one_pass(tmp_path: Path) -> None:
    """The same stamped record on both sides of the split (overlapping pastes) counts once."""
    report = (CORPUS / "007-ubuntu1404-icecast-syslog.log").read_text()
    filler = "".join(CHATTER.format(s=1, h=1, p=n) for n in range(20000))
    path = tmp_path / "syslog"
    path.write_text(report + filler + report)
    got = [k.to_dict() for k in FileScan(path, min_size=0, quiet=1024)]
    want = _sequential(path)
    assert got == want
    assert len(want) == 1
