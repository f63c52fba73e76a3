"""The kern.log follower on its own: resume, rotation, truncation, partial lines."""

from __future__ import annotations

import os
from pathlib import Path

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
