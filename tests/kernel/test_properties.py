"""Property tests: any input is survived, and no kernel record lacks its victim's pid."""

from __future__ import annotations

import io
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill
from tests.conftest import CORPUS

CORPUS_LINES = [
    line for path in sorted(CORPUS.glob("*.log")) for line in path.read_bytes().splitlines()
]


def _check(kills: list[OomKill]) -> None:
    for k in kills:
        if k.killer == "systemd-oomd":
            assert k.task_memcg  # a cgroup kill names its cgroup
        else:
            assert isinstance(k.victim.pid, int)
            assert k.victim.pid >= 0


def _kill(k: OomKill) -> tuple[object, ...]:
    """What the line that proves a kill says, whatever context a shuffle tore from it."""
    v = k.victim
    return (k.killer, v.pid, v.comm, v.total_vm_kb, v.anon_rss_kb, k.task_memcg, k.reason)


def _live(lines: list[bytes], batch: int = 7) -> list[OomKill]:
    """The followers' path: batches of lines through `feed_live`, then the end."""
    scanner = LogScanner()
    kills = []
    for i in range(0, len(lines), batch):
        kills.extend(scanner.feed_live(lines[i : i + batch]))
    return kills + scanner.close()


def _both(data: bytes) -> tuple[list[OomKill], list[OomKill]]:
    """Line by line and the block scanner; the live path must give line by line's records."""
    by_line = list(LogScanner().scan_lines(data.split(b"\n")))
    fast = list(LogScanner().scan_stream(io.BytesIO(data), block=512))
    live = _live(data.split(b"\n"))
    assert [_kill(k) for k in live] == [_kill(k) for k in by_line]
    return by_line, fast


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes never raise, whatever comes out has a victim pid, and both paths agree."""
    by_line, fast = _both(data)
    _check(by_line)
    assert [_kill(k) for k in fast] == [_kill(k) for k in by_line]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(CORPUS_LINES), max_size=200),
    st.lists(st.text(max_size=80), max_size=20),
)
def test_shuffled_and_interleaved_reports(lines: list[bytes], noise: list[str]) -> None:
    """Real report lines in any order, mixed with random text: no raise, no lost pid.

    Both paths find the same kills. The context a shuffle scatters far from its
    kill (rows 300 lines away) may be joined by one path and not the other; for
    whole reports, cut or not, the records are equal field for field (below).
    """
    mixed = list(lines) + [n.encode("utf-8", "surrogatepass") for n in noise]
    random.Random(len(mixed)).shuffle(mixed)
    by_line, fast = _both(b"\n".join(mixed))
    _check(by_line)
    assert [_kill(k) for k in fast] == [_kill(k) for k in by_line]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CORPUS.glob("*.log"))), st.data())
def test_truncated_reports(path: object, data: st.DataObject) -> None:
    """A report cut anywhere invents no kill, and the fast path agrees with line by line."""
    raw = path.read_bytes()  # type: ignore[attr-defined]
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, len(raw)))
    by_line, fast = _both(raw[start:end])
    _check(by_line)
    assert [k.to_dict() for k in fast] == [k.to_dict() for k in by_line]
    whole = {k.victim.pid for k in LogScanner().scan_lines(raw.split(b"\n"))}
    # a piece of a log can only hold kills the whole log holds, save a pid cut in half
    assert all(
        k.victim.pid in whole or str(k.victim.pid) in raw[start:end].decode("utf-8", "replace")
        for k in by_line
    )


def test_fast_path_matches_line_by_line_on_the_whole_corpus() -> None:
    """The block scanner gives exactly the records of the line-by-line parser."""
    data = b"\n".join(CORPUS_LINES) + b"\n"
    for block in (64, 1000, 1 << 16):
        fast = list(LogScanner().scan_stream(io.BytesIO(data), block=block))
        slow = list(LogScanner().scan_lines(data.split(b"\n")))
        assert [k.to_dict() for k in fast] == [k.to_dict() for k in slow]
        assert len(fast) >= 20
    for batch in (1, 50, 4096):
        live = _live(data.split(b"\n"), batch)
        assert [k.to_dict() for k in live] == [k.to_dict() for k in slow]
