"""Durable state in SQLite: source cursors, incidents, and the delivery outbox.

An incident, its outbox rows and the cursor after it are written in one
transaction, so a `kill -9` at any moment either loses nothing (the log is read
again from the old cursor, and the incident id makes the second write a no-op) or
has everything stored (delivery resumes from the outbox).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oomwatch.errors import StoreError
from oomwatch.model import Incident
from oomwatch.store.outbox import Outbox
from oomwatch.store.schema import (
    INCIDENT_COLUMNS,
    MIGRATIONS,
    SCHEMA,
    Delivery,
    Folded,
    GroupState,
    Transaction,
    encode_body,
    incident_from_row,
    read_deliveries,
    read_incidents,
)

if TYPE_CHECKING:
    from oomwatch.notify.slack import Thread

__all__ = [
    "FRESH",
    "INCIDENT_COLUMNS",
    "Delivery",
    "Folded",
    "GroupState",
    "Store",
    "incident_from_row",
    "read_deliveries",
    "read_incidents",
]

log = logging.getLogger("oomwatch.store")
FRESH = 16  # incidents kept in memory after they are stored (a storm's latest)
COMPRESS_BATCH = 1000  # rows looked at (and text bodies compressed) in one pass
COMPRESS_TX_ROWS = 32  # bodies written back in one transaction (about 1 ms)
CHECKPOINT_PAGES = 4000  # 16 MB of log: only if `checkpoint()` has not run for long


class _RehearsalEndError(Exception):
    """Ends a rehearsal's transaction in a rollback."""


class Store(Outbox):
    """The agent's SQLite database (one connection, used from the event loop's thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._open(path)
        except sqlite3.DatabaseError as e:
            if not _corrupt(e):
                raise StoreError(f"state database {path}: {e}") from None
            aside = _move_aside(path)
            log.error(
                "state database %s is corrupt (%s): moved to %s; starting a new one "
                "(the kills still in the kernel log are summarised, as on a first start)",
                path,
                e,
                aside,
            )
            try:
                self._open(path)
            except (OSError, sqlite3.Error) as e2:
                raise StoreError(f"state database {path}: {e2}") from None
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"state database {path}: {e}") from None
        # notifiers running in worker threads (Slack, SMTP) use the threads table too
        self.lock = threading.RLock()
        self.file_id = _file_id(path)
        self.fresh = {}
        # a connection of its own for a worker thread's upkeep (checkpoints, compression)
        self._worker: sqlite3.Connection | None = None
        self._worker_lock = threading.Lock()
        self._compressed_upto = 0  # the rowid of incidents up to which bodies were looked at

    def _open(self, path: Path) -> None:
        """Open (or create) the database with its schema; a corrupt file raises DatabaseError."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # command lines and cgroup paths are in it: readable by the agent alone (SQLite
        # gives its -wal and -shm files the database file's mode)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crash of the process (kill -9); only a power
            # loss can drop the last transactions.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-1024")  # 1 MiB: the agent must stay small
            # a checkpoint writes and syncs the database file, milliseconds that the
            # commit of a kill would wait for: `checkpoint()` does it in another thread,
            # and this connection only once the log is this long (checkpoints stalled)
            self.db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
            self.db.executescript(SCHEMA)
            self._migrate()
            # a truncated file opens; its missing pages show only when read
            (check,) = self.db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
        except sqlite3.Error:
            self.db.close()
            raise

    def _migrate(self) -> None:
        """Add the columns that later versions added to a state file made by an earlier one."""
        for table, column, decl in MIGRATIONS:
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                if column == "category":  # rows of an earlier version: conditions by kind
                    self.db.execute(
                        "UPDATE incidents SET category = 'condition' WHERE kind NOT IN "
                        "('oom_kill', 'log_gap', 'unseen_kills')"
                    )

    def close(self) -> None:
        """Close the database."""
        self._close_worker()
        self.db.close()

    def checkpoint(self) -> tuple[int, int] | None:
        """Copy the write-ahead log into the database file, never blocking a writer.

        Its own connection, so it can run in a worker thread (the sampler's) while the
        event loop commits. (pages in the log, pages copied); None when it failed (a
        checkpoint already running, a full disk): the next call tries again.
        """
        with self._worker_lock:
            try:
                row = self._worker_db().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as e:
                log.debug("checkpoint of %s failed: %s", self.path, e)
                return None
        return int(row[1]), int(row[2])

    def compress_bodies(self, batch: int = COMPRESS_BATCH) -> int:
        """Compress the bodies `record` stored as JSON text; how many were compressed.

        Compressing in `record` cost a kill 0.1-0.2 ms before its first delivery (zlib
        set up cold), so a worker thread (the sampler's) does it afterwards, on its own
        connection; a body reads the same either way. Rows are visited once, by rowid,
        and written back a few at a time: a kill's commit never waits for many.
        """
        done = 0
        with self._worker_lock:
            try:
                db = self._worker_db()
                rows = db.execute(  # the text bodies only: the compressed stay in the file
                    "SELECT rowid, CASE WHEN typeof(body) = 'text' THEN body END "
                    "FROM incidents WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (self._compressed_upto, batch),
                ).fetchall()
                packed = [(encode_body(b), r, b) for r, b in rows if isinstance(b, str)]
                for i in range(0, len(packed), COMPRESS_TX_ROWS):
                    with Transaction(db, None):  # `_worker_lock` is held
                        # unless it changed meanwhile (pruned, or the file written again)
                        done += db.executemany(
                            "UPDATE incidents SET body = ? WHERE rowid = ? AND body = ?",
                            packed[i : i + COMPRESS_TX_ROWS],
                        ).rowcount
            except sqlite3.Error as e:
                log.debug("compressing bodies in %s failed: %s", self.path, e)
                return done
            if rows:
                self._compressed_upto = rows[-1][0]
        return done

    def _worker_db(self) -> sqlite3.Connection:
        """The worker's connection (under `_worker_lock`), opened on first use."""
        if self._worker is None:
            self._worker = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        return self._worker

    def _close_worker(self) -> None:
        with self._worker_lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None
            self._compressed_upto = 0

    def keep_file(self) -> None:
        """Write the database again at its path when the file was deleted or replaced.

        The open connection still holds every row (an unlinked file lives while it is
        open): it is copied to a new file, so the outbox, the cursors and the dedup
        state survive, and the next start neither repeats nor loses a kill.
        """
        now = _file_id(self.path)
        if now == self.file_id:
            return
        with self.lock:
            tmp = self.path.with_name(self.path.name + ".restore")
            tmp.unlink(missing_ok=True)
            os.close(os.open(tmp, os.O_CREAT | os.O_RDWR, 0o600))
            copy = sqlite3.connect(tmp)
            try:
                self.db.backup(copy)
            finally:
                copy.close()
            aside = _move_aside(self.path, "replaced") if now is not None else None
            self._close_worker()
            self.db.close()
            for suffix in ("-wal", "-shm"):  # the deleted file's, or the stranger's
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            os.replace(tmp, self.path)
            self._open(self.path)
            self.file_id = _file_id(self.path)
        log.error(
            "state database %s was %s while running: written again from the open copy",
            self.path,
            f"replaced (the other file is now {aside})" if aside else "deleted",
        )

    # -- cursors -------------------------------------------------------------------------

    def cursor(self, source: str) -> tuple[str | None, dict[str, Any]]:
        """The saved cursor of a source and what was saved with it."""
        row = self.db.execute(
            "SELECT value, extra FROM cursors WHERE source = ?", (source,)
        ).fetchone()
        if row is None:
            return None, {}
        return row[0], json.loads(row[1] or "{}")

    def record(
        self,
        incidents: Sequence[Incident],
        receivers: Iterable[str] | Mapping[str, Sequence[str]],
        *,
        source: str | None = None,
        cursor: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[Incident]:
        """Store incidents, their outbox rows and the cursor in one transaction; return new ones."""
        with self._tx():
            new = self._write(incidents, receivers, source, cursor, extra)
        fresh = self.fresh
        for inc in new:  # committed: what a lane reads next is the same incident
            fresh[inc.id] = inc
            if len(fresh) > FRESH:
                del fresh[next(iter(fresh))]
        return new

    def rehearse(self, incidents: Sequence[Incident], receivers: Iterable[str]) -> None:
        """`record`'s statements run and rolled back: ready before the first kill needs them."""
        with contextlib.suppress(_RehearsalEndError), self._tx():
            self._write(incidents, receivers, "rehearsal", "rehearsal", None)
            raise _RehearsalEndError

    def _write(
        self,
        incidents: Sequence[Incident],
        receivers: Iterable[str] | Mapping[str, Sequence[str]],
        source: str | None,
        cursor: str | None,
        extra: dict[str, Any] | None,
    ) -> list[Incident]:
        """`record`'s statements, inside its transaction; the incidents new to the store."""
        now = time.time()
        new: list[Incident] = []
        # routed before the transaction: only writes happen inside it
        fixed = None if isinstance(receivers, Mapping) else list(receivers)
        for inc in incidents:
            v = inc.victim
            cur = self.db.execute(
                "INSERT OR IGNORE INTO incidents (id, key, kind, category, status, severity, "
                "title, detected_at, drill, body, pid, unplaced) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    inc.id,
                    inc.key,
                    inc.kind,
                    inc.category,
                    inc.status,
                    inc.severity,
                    inc.title,
                    inc.detected_at,
                    int(inc.drill),
                    inc.body_text(),  # compressed later: `compress_bodies`
                    v.pid if v else None,
                    int(inc.unplaced),
                ),
            )
            if cur.rowcount == 0:
                continue  # read again after a restart: already stored and queued
            new.append(inc)
            self.db.executemany(
                "INSERT OR IGNORE INTO outbox (incident_id, receiver, next_at, created) "
                "VALUES (?, ?, ?, ?)",
                [
                    (inc.id, r, now, now)
                    for r in (fixed if fixed is not None else receivers.get(inc.id, ()))  # type: ignore[union-attr]
                ],
            )
        if source is not None and cursor is not None:
            self.db.execute(
                "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE "
                "SET value = excluded.value, extra = excluded.extra, "
                "updated = excluded.updated",
                (source, cursor, json.dumps(extra or {}), now),
            )
        return new

    def prune(self, older_than: float) -> int:
        """Forget incidents detected before `older_than` whose deliveries are all finished."""
        with self._tx():
            self.db.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND incident_id IN (SELECT id FROM "
                "incidents WHERE detected_at < ?)",
                (older_than,),
            )
            cur = self.db.execute(
                "DELETE FROM incidents WHERE detected_at < ? AND id NOT IN "
                "(SELECT incident_id FROM outbox)",
                (older_than,),
            )
        return cur.rowcount

    # -- queries ---------------------------------------------------------------------------

    def incidents(self, since: float = 0.0, limit: int = 100) -> list[dict[str, Any]]:
        """Recent incidents, newest first, as the HTTP API shows them."""
        return read_incidents(self.db, since, limit)

    # -- Slack threads -------------------------------------------------------------------

    def thread(self, receiver: str, key: str) -> Thread | None:
        """The first message posted for `key`."""
        from oomwatch.notify.slack import Thread

        with self.lock:
            row = self.db.execute(
                "SELECT channel, ts, count, victims, head, counted FROM threads "
                "WHERE receiver = ? AND key = ?",
                (receiver, key),
            ).fetchone()
        return Thread(row[0], row[1], int(row[2]), int(row[3]), row[4], row[5]) if row else None

    def channel_id(self, receiver: str) -> str | None:
        """The channel ID Slack gave for an earlier message of `receiver`, if any."""
        with self.lock:
            row = self.db.execute(
                "SELECT channel FROM threads WHERE receiver = ? LIMIT 1", (receiver,)
            ).fetchone()
        return str(row[0]) if row else None

    def save_thread(self, receiver: str, key: str, thread: Thread) -> None:
        """Record the first message of `key`, or its new counts."""
        with self.lock:
            self.db.execute(
                "INSERT INTO threads VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (receiver, key) "
                "DO UPDATE SET count = excluded.count, victims = excluded.victims, "
                "counted = excluded.counted",
                (
                    receiver,
                    key,
                    thread.channel,
                    thread.ts,
                    thread.kills,
                    thread.victims,
                    thread.head,
                    thread.counted,
                ),
            )


def _corrupt(e: sqlite3.DatabaseError) -> bool:
    """SQLite's words for a file that is not (or no longer) a database."""
    text = str(e)
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _file_id(path: Path) -> tuple[int, int] | None:
    """The file's device and inode, None when it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _move_aside(path: Path, why: str = "corrupt") -> Path:
    """Rename a database (and its -wal, -shm) to `<name>.<why>-<time>`; the new name."""
    aside = path.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        old = path.with_name(path.name + suffix)
        if old.exists():
            old.rename(aside.with_name(aside.name + suffix))
    return aside
