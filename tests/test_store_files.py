"""The state on disk: a directory and database only the agent can read."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from oomwatch.store import Store

pytestmark = pytest.mark.fault


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_state_dir_is_0700_and_database_0600(tmp_path: Path) -> None:
    """Command lines and cgroup paths are stored: nobody but the agent reads them."""
    path = tmp_path / "state" / "oomwatch.db"
    store = Store(path)
    store.db.execute("CREATE TABLE t (x)")  # a write: the -wal file exists now
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600
    assert _mode(path.with_name("oomwatch.db-wal")) == 0o600


def test_an_existing_database_is_made_0600(tmp_path: Path) -> None:
    """A state file left world-readable by an earlier version is closed up at start."""
    path = tmp_path / "oomwatch.db"
    Store(path).db.close()
    path.chmod(0o644)
    Store(path)
    assert _mode(path) == 0o600


def test_a_corrupt_database_is_moved_aside_and_a_new_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage or a truncated file: renamed `.corrupt-<time>`, one log line, a working store."""
    for damage in ("garbage", "truncated"):
        db = tmp_path / damage / "oomwatch.db"
        if damage == "garbage":
            db.parent.mkdir()
            db.write_bytes(b"not a database at all\x00\x01" * 100)
        else:
            s = Store(db)
            for i in range(3000):
                s.record([], [], source=f"source-{i}", cursor="x" * 200)
            assert s.cursor("source-1")[0] == "x" * 200
            s.close()
            os.truncate(db, db.stat().st_size // 2)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="oomwatch.store"):
            store = Store(db)
        (moved,) = db.parent.glob("oomwatch.db.corrupt-*")
        assert moved.stat().st_size > 0
        (record,) = caplog.records
        assert f"state database {db} is corrupt" in record.getMessage()
        assert str(moved) in record.getMessage()
        assert store.cursor("source-1") == (None, {}), "a new database: a first start"
        store.record([], [], source="kmsg", cursor="7")
        assert store.cursor("kmsg")[0] == "7"
        store.close()


def test_an_unusable_state_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A state directory the agent cannot create or write: the setting named, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "run"],
        env={
            "PATH": os.environ["PATH"],
            "OOMWATCH_STATE_DIR": str(blocker / "state"),
            "OOMWATCH_LISTEN": "127.0.0.1:1",
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"oomwatch: state database {blocker}/state/oomwatch.db: ")
    assert last.endswith("(OOMWATCH_STATE_DIR)")
    assert "Traceback" not in done.stderr


def test_commits_leave_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    """The agent's connection never checkpoints below CHECKPOINT_PAGES; `checkpoint()` does.

    SQLite's default (every 1,000 pages) would make every few hundredth commit write
    and sync the database file while a kill waits for its commit.
    """
    from oomwatch.store import CHECKPOINT_PAGES
    from oomwatch.testing import make_incident

    store = Store(tmp_path / "oomwatch.db")
    wal = tmp_path / "oomwatch.db-wal"
    # frames of 1,200 pages: past SQLite's 1,000; had it checkpointed, the log would
    # start again from its beginning and stop growing, and the loop end without it
    for n in range(1, 20_000):
        store.record([make_incident(n)], ["webhook"], source="kmsg", cursor=f"b:{n}")
        if wal.stat().st_size >= 1200 * (4096 + 24):
            break
    else:
        pytest.fail("the write-ahead log never reached 1,200 pages")
    got = store.checkpoint()
    assert got is not None
    pages, copied = got
    assert 1200 <= pages < CHECKPOINT_PAGES  # none was copied before, all of it now
    assert copied == pages
    # the next commit starts the log again from its beginning
    store.record([make_incident(n + 1)], ["webhook"], source="kmsg", cursor="b:end")
    again = store.checkpoint()
    assert again is not None
    assert again[0] < 20, again
    store.close()
