"""The kern.log follower on its own: resume, rotation, truncation, partial lines."""

from __future__ import annotations

import os
from pathlib import Path

from oomwatch.sources import Batch
from oomwatch.sources.logfile import LogFileFollower


def test_resume_from_cursor_reads_only_new_lines(tmp_path: Path) -> None:
    """A saved cursor (inode + offset) resumes after the last complete line, not from 0."""
    log = tmp_path / "kern.log"
    log.write_bytes(b"one\ntwo\npart")
    f = LogFileFollower(log, None)
    assert f.read_available().lines == [b"one", b"two"]
    cursor = f.cursor
    f.close()
    with log.open("ab") as w:
        w.write(b"ial\nthree\n")
    g = LogFileFollower(log, cursor)
    assert g.read_available().lines == [b"partial", b"three"]
    g.close()


def test_truncated_and_rewritten_to_the_same_size(tmp_path: Path) -> None:
    """copytruncate followed by a write as long as before is still seen as new."""
    log = tmp_path / "kern.log"
    log.write_bytes(b"Oct 12 19:00:03 a\n")
    f = LogFileFollower(log, None)
    assert f.read_available().lines == [b"Oct 12 19:00:03 a"]
    with log.open("r+b") as w:
        w.truncate(0)
        w.write(b"Oct 12 19:00:04 a\n")
    assert f.read_available().lines == [b"Oct 12 19:00:04 a"]
    assert f.read_available().lines == []
    f.close()


def test_rotation_by_rename_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    """After a rename, the old file's last lines come first, then the new file from 0."""
    log = tmp_path / "kern.log"
    log.write_bytes(b"a\n")
    f = LogFileFollower(log, None)
    assert f.read_available().lines == [b"a"]
    os.rename(log, tmp_path / "kern.log.1")
    with (tmp_path / "kern.log.1").open("ab") as w:
        w.write(b"b\n")
    log.write_bytes(b"c\n")
    assert f.read_available().lines == [b"b", b"c"]
    f.close()


def test_missing_file_waits(tmp_path: Path) -> None:
    """No file yet: no lines and no error; it is picked up once created."""
    f = LogFileFollower(tmp_path / "kern.log", None)
    assert f.read_available().lines == []
    (tmp_path / "kern.log").write_bytes(b"x\n")
    assert f.read_available().lines == [b"x"]
    f.close()


def test_other_files_in_the_directory_wake_nothing(tmp_path: Path) -> None:
    """The agent's own log (or a pod's) written beside kern.log causes no read: no loop.

    A tree below it (a symlink into /proc, as /var/log/pods holds links) is not walked.
    """
    import asyncio

    log = tmp_path / "kern.log"
    log.write_bytes(b"")
    (tmp_path / "proc").symlink_to("/proc")
    own = tmp_path / "oomwatch.log"

    async def go() -> tuple[int, list[bytes]]:
        f = LogFileFollower(log, None, poll_s=60.0)  # no wake-up from the timeout
        reads = 0
        real = f.read_available

        def counted() -> Batch:
            nonlocal reads
            reads += 1
            return real()

        f.read_available = counted  # type: ignore[method-assign]
        batches = f.batches()
        primed = asyncio.ensure_future(anext(batches))
        while not primed.done():  # a batch after the first read: the watch is up
            with log.open("ab") as out:
                out.write(b"primer\n")
            await asyncio.wait([primed], timeout=0.5)
        reads = 0
        following = asyncio.ensure_future(anext(batches))
        with own.open("ab") as out:
            for i in range(20):  # paced past the watch's 20 ms debounce
                out.write(b"agent: line %d\n" % i)
                out.flush()
                await asyncio.sleep(0.03)
        with log.open("ab") as out:
            out.write(b"kernel line\n")
        batch = await asyncio.wait_for(following, 10)
        await batches.aclose()  # type: ignore[attr-defined]
        f.close()
        return reads, batch.lines

    reads, lines = asyncio.run(go())
    assert lines == [b"kernel line"]
    assert reads == 1  # kern.log's change only


def test_a_large_unread_stretch_comes_in_bounded_batches(tmp_path: Path) -> None:
    """10 MiB unread: batches of at most BATCH_BYTES, every line once and in order."""
    import asyncio

    from oomwatch.sources.logfile import BATCH_BYTES

    log = tmp_path / "kern.log"
    lines = [
        f"Dec  4 10:00:00 node kernel: line {i:07d} ".encode() + b"x" * 60 for i in range(100_000)
    ]
    log.write_bytes(b"\n".join(lines) + b"\n")
    total = log.stat().st_size
    assert total > 2 * BATCH_BYTES

    async def go() -> list[list[bytes]]:
        f = LogFileFollower(log, None, poll_s=60.0)
        got: list[list[bytes]] = []
        seen = 0
        async for batch in f.batches():
            got.append(batch.lines)
            seen += len(batch.lines)
            if seen == len(lines):
                break
        f.close()
        return got

    batches = asyncio.run(go())
    assert len(batches) >= total // BATCH_BYTES
    assert all(sum(len(x) + 1 for x in b) <= BATCH_BYTES + 200 for b in batches)
    assert [x for b in batches for x in b] == lines


def test_a_rotated_file_is_read_to_its_end_in_bounded_batches_before_the_new_one(
    tmp_path: Path,
) -> None:
    """Rotation by rename with 6 MiB unread in the old file: old lines first, then the new."""
    from oomwatch.sources.logfile import BATCH_BYTES

    log = tmp_path / "kern.log"
    log.write_bytes(b"first\n")
    f = LogFileFollower(log, None)
    assert f.read_available().lines == [b"first"]
    old = [b"old %07d " % i + b"y" * 50 for i in range(100_000)]
    with log.open("ab") as out:
        out.write(b"\n".join(old) + b"\n")
    log.rename(tmp_path / "kern.log.1")
    log.write_bytes(b"new\n")
    got: list[bytes] = []
    for _ in range(100):
        batch = f.read_available()
        assert sum(len(x) + 1 for x in batch.lines) <= 2 * BATCH_BYTES
        got.extend(batch.lines)
        if not f.more:
            break
    assert got == [*old, b"new"]
    f.close()
