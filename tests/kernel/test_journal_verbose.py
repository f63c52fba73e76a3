"""`journalctl -o verbose` of a real kill whose process name holds a newline.

Captured here from a real journald: the kernel escapes the newline in /dev/kmsg,
journald stores it raw, and `-o verbose` prints the rest of the value on an
indented line. Every path reads the same kill.
"""

from __future__ import annotations

import io
from pathlib import Path

from oomwatch.kernel.parallel import FileScan
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill

CAPTURE = Path(__file__).parents[1] / "data" / "journal-verbose-comm-newline.txt"


def identity(kills: list[OomKill]) -> list[tuple[object, ...]]:
    """What tells kills apart."""
    return [(k.victim.pid, k.victim.comm, k.task_memcg, k.uptime_s) for k in kills]


def test_every_path_reads_the_kill_with_its_newline_comm(tmp_path: Path) -> None:
    """Line by line, the block scanner, and the two-core file scan agree on one kill."""
    raw = CAPTURE.read_bytes()
    by_lines = list(LogScanner().scan_lines(raw.split(b"\n")))
    assert [(k.victim.pid, k.victim.comm) for k in by_lines] == [(7381, "ab cd")]
    assert by_lines[0].task_memcg == "/oomwatch-nl-eb34fa"
    assert by_lines[0].host == "vm"
    by_blocks = list(LogScanner().scan_stream(io.BytesIO(raw)))
    # padded far past the size that splits a file across two cores
    filler = b"Thu 2026-12-03 13:00:00.000000 UTC [s=x;i=1]\n    MESSAGE=nothing here\n"
    big = tmp_path / "journal.verbose"
    big.write_bytes(filler * 800_000 + raw + filler * 800_000)
    by_file = list(FileScan(big))
    assert identity(by_blocks) == identity(by_lines) == identity(by_file)
