"""The state on disk: a directory and database only the agent can read."""

from __future__ import annotations

import stat
from pathlib import Path

from oomwatch.store import Store


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
