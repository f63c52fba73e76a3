"""Durable state in SQLite: source cursors, incidents, and the delivery outbox.

An incident, its outbox rows and the cursor after it are written in one
transaction, so a `kill -9` at any moment either loses nothing (the log is read
again from the old cursor, and the incident id makes the second write a no-op) or
has everything stored (delivery resumes from the outbox).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oomwatch.delivery.grouping import GroupState
from oomwatch.incidents import Incident

SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    extra TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    detected_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_detected ON incidents (detected_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    receiver TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created REAL NOT NULL,
    last_error TEXT,
    group_key TEXT,
    UNIQUE (incident_id, receiver)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
CREATE TABLE IF NOT EXISTS groups (
    receiver TEXT NOT NULL,
    key TEXT NOT NULL,
    last_sent REAL NOT NULL,
    last_status TEXT NOT NULL,
    last_severity TEXT NOT NULL,
    followup_at REAL,
    alias TEXT,
    PRIMARY KEY (receiver, key)
);
CREATE TABLE IF NOT EXISTS threads (
    receiver TEXT NOT NULL,
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (receiver, key)
);
"""


_SELECT_DELIVERIES = (
    "SELECT o.id, o.receiver, o.attempts, o.created, i.id, i.key, i.kind, i.status, "
    "i.severity, i.title, i.detected_at, i.body FROM outbox o "
    "JOIN incidents i ON i.id = o.incident_id WHERE "
)


@dataclass(frozen=True, slots=True)
class Folded:
    """Repeats of one key waiting for their follow-up."""

    ids: list[int]
    attempts: int
    incident_ids: list[str]
    pids: list[str]
    last: Incident
    unplaced: int = 0  # kills whose cgroup the kernel did not print (rate-limited reports)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending delivery of an incident to a receiver."""

    id: int
    receiver: str
    attempts: int
    created: float
    incident: Incident


class Store:
    """The agent's SQLite database (one connection, used from the event loop's thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of the process (kill -9); only a power
        # loss can drop the last transactions.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-1024")  # 1 MiB: the agent must stay small
        self.db.executescript(SCHEMA)
        self._migrate()
        # notifiers running in worker threads (Slack, SMTP) use the threads table too
        self.lock = threading.RLock()

    def _migrate(self) -> None:
        """Add the columns that later versions added to a state file made by an earlier one."""
        for table, column in (("outbox", "group_key"), ("groups", "alias")):
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    def close(self) -> None:
        """Close the database."""
        self.db.close()

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
        receivers: Iterable[str] | Callable[[Incident], Iterable[str]],
        *,
        source: str | None = None,
        cursor: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[Incident]:
        """Store incidents, their outbox rows and the cursor in one transaction; return new ones."""
        now = time.time()
        new: list[Incident] = []
        if callable(receivers):
            route = receivers
        else:
            fixed = list(receivers)

            def route(_: Incident) -> Iterable[str]:
                return fixed

        with self._tx():
            for inc in incidents:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        inc.id,
                        inc.key,
                        inc.kind,
                        inc.status,
                        inc.severity,
                        inc.title,
                        inc.detected_at,
                        json.dumps(inc.body, ensure_ascii=False),
                    ),
                )
                if cur.rowcount == 0:
                    continue  # read again after a restart: already stored and queued
                new.append(inc)
                self.db.executemany(
                    "INSERT OR IGNORE INTO outbox (incident_id, receiver, next_at, created) "
                    "VALUES (?, ?, ?, ?)",
                    [(inc.id, r, now, now) for r in route(inc)],
                )
            if source is not None and cursor is not None:
                self.db.execute(
                    "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE "
                    "SET value = excluded.value, extra = excluded.extra, "
                    "updated = excluded.updated",
                    (source, cursor, json.dumps(extra or {}), now),
                )
        return new

    # -- outbox ----------------------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest first."""
        return self._deliveries("o.state = 'pending' AND o.next_at <= ?", (now,), limit)

    def _deliveries(self, where: str, args: tuple[Any, ...], limit: int) -> list[Delivery]:
        # `where` is one of this module's fixed clauses; values go in as parameters
        sql = _SELECT_DELIVERIES + where + " ORDER BY o.id LIMIT ?"
        rows = self.db.execute(sql, (*args, limit)).fetchall()
        return [
            Delivery(
                r[0],
                r[1],
                r[2],
                r[3],
                Incident(r[4], r[5], r[6], r[7], r[8], r[9], r[10], json.loads(r[11])),
            )
            for r in rows
        ]

    def next_due(self) -> float | None:
        """When the next pending delivery or follow-up is due."""
        row = self.db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(next_at) AS t FROM outbox WHERE state = 'pending' "
            "UNION ALL SELECT MIN(followup_at) FROM groups WHERE followup_at IS NOT NULL)"
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def pending(self) -> int:
        """How many deliveries wait."""
        return int(
            self.db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        )

    def sent(self, delivery_id: int) -> None:
        """A delivery succeeded."""
        self.db.execute(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1 WHERE id = ?", (delivery_id,)
        )

    def retry(self, delivery_id: int, next_at: float, error: str) -> None:
        """A delivery failed in a way a retry can fix; try again at `next_at`."""
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
            (next_at, error, delivery_id),
        )

    def give_up(self, delivery_id: int, state: str, error: str) -> None:
        """A delivery failed for good (`failed`) or grew too old (`dropped`)."""
        self.db.execute(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
            (state, error, delivery_id),
        )

    # -- groups (dedup and folding) -------------------------------------------------------

    def group(self, receiver: str, key: str) -> GroupState | None:
        """What was last sent to `receiver` for `key`."""
        row = self.db.execute(
            "SELECT last_sent, last_status, last_severity, followup_at FROM groups "
            "WHERE receiver = ? AND key = ?",
            (receiver, key),
        ).fetchone()
        return GroupState(*row) if row else None

    def group_sent(
        self,
        receiver: str,
        key: str,
        now: float,
        status: str,
        severity: str,
        *,
        alias: str | None = None,
    ) -> None:
        """Something was sent for `key`; a follow-up it included is done."""
        self.db.execute(
            "INSERT INTO groups VALUES (?, ?, ?, ?, ?, NULL, ?) ON CONFLICT (receiver, key) DO "
            "UPDATE SET last_sent = excluded.last_sent, last_status = excluded.last_status, "
            "last_severity = excluded.last_severity, followup_at = NULL, "
            "alias = COALESCE(excluded.alias, groups.alias)",
            (receiver, key, now, status, severity, alias),
        )

    def alias_group(self, receiver: str, alias: str, since: float) -> tuple[str, float] | None:
        """(key, last sent) of the latest group with this alias sent since `since`."""
        row = self.db.execute(
            "SELECT key, last_sent FROM groups WHERE receiver = ? AND alias = ? AND "
            "last_sent >= ? ORDER BY last_sent DESC LIMIT 1",
            (receiver, alias, since),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def fold(self, delivery_id: int, receiver: str, key: str, followup_at: float) -> None:
        """Keep a repeat for the follow-up due at `followup_at` (or an earlier one)."""
        with self._tx():
            self.db.execute(
                "UPDATE outbox SET state = 'folded', group_key = ? WHERE id = ?", (key, delivery_id)
            )
            self.db.execute(
                "UPDATE groups SET followup_at = MIN(COALESCE(followup_at, ?), ?) "
                "WHERE receiver = ? AND key = ?",
                (followup_at, followup_at, receiver, key),
            )

    def due_followups(self, now: float) -> list[tuple[str, str]]:
        """(receiver, key) of follow-ups whose time has come."""
        rows = self.db.execute(
            "SELECT receiver, key FROM groups WHERE followup_at IS NOT NULL AND followup_at <= ?",
            (now,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def folded(self, receiver: str, key: str) -> Folded | None:
        """The repeats folded for a follow-up: their rows and pids, and the last one whole.

        Only the last incident's body is read: a storm folds thousands of kills.
        """
        rows = self.db.execute(
            "SELECT o.id, o.attempts, i.id, json_extract(i.body, '$.victim.pid'), "
            "json_extract(i.body, '$.task_memcg') IS NULL AND "
            "json_extract(i.body, '$.oom_memcg') IS NULL FROM outbox o "
            "JOIN incidents i ON i.id = o.incident_id WHERE o.state = 'folded' AND "
            "o.receiver = ? AND COALESCE(o.group_key, i.key) = ? ORDER BY o.id",
            (receiver, key),
        ).fetchall()
        if not rows:
            return None
        # the body told of is the last one whose cgroup the kernel printed
        placed = [r for r in rows if not r[4]]
        (last,) = self._deliveries("o.id = ?", ((placed or rows)[-1][0],), 1)
        return Folded(
            ids=[r[0] for r in rows],
            attempts=max(r[1] for r in rows),
            incident_ids=[r[2] for r in rows],
            pids=[str(r[3]) for r in rows if r[3] is not None],
            last=last.incident,
            unplaced=len(rows) - len(placed),
        )

    def followed(self, ids: list[int]) -> None:
        """These folded repeats went out in a follow-up."""
        self.db.executemany(
            "UPDATE outbox SET state = 'followed' WHERE id = ?", [(i,) for i in ids]
        )

    def postpone_followup(self, receiver: str, key: str, at: float | None) -> None:
        """Try the follow-up again at `at` (None: there is nothing left to follow up)."""
        self.db.execute(
            "UPDATE groups SET followup_at = ? WHERE receiver = ? AND key = ?", (at, receiver, key)
        )

    def defer(self, delivery_id: int, at: float) -> None:
        """Not yet (rate limit): try at `at`, without counting an attempt."""
        self.db.execute("UPDATE outbox SET next_at = ? WHERE id = ?", (at, delivery_id))

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

    def _tx(self) -> _Transaction:
        return _Transaction(self.db, self.lock)

    # -- Slack threads -------------------------------------------------------------------

    def thread(self, receiver: str, key: str) -> tuple[str, str, int] | None:
        """(channel, ts, count) of the first message posted for `key`."""
        with self.lock:
            row = self.db.execute(
                "SELECT channel, ts, count FROM threads WHERE receiver = ? AND key = ?",
                (receiver, key),
            ).fetchone()
        return (row[0], row[1], int(row[2])) if row else None

    def save_thread(self, receiver: str, key: str, channel: str, ts: str, count: int) -> None:
        """Record the first message of `key`, or its new count."""
        with self.lock:
            self.db.execute(
                "INSERT INTO threads VALUES (?, ?, ?, ?, ?) ON CONFLICT (receiver, key) DO "
                "UPDATE SET count = excluded.count",
                (receiver, key, channel, ts, count),
            )


def read_incidents(db: sqlite3.Connection, since: float, limit: int) -> list[dict[str, Any]]:
    """Incidents detected since `since`, newest first (for the API and for tests)."""
    rows = db.execute(
        "SELECT id, key, kind, status, severity, title, detected_at, body FROM incidents "
        "WHERE detected_at >= ? ORDER BY detected_at DESC LIMIT ?",
        (since, limit),
    ).fetchall()
    return [
        {
            "id": r[0],
            "key": r[1],
            "kind": r[2],
            "status": r[3],
            "severity": r[4],
            "title": r[5],
            "detected_at": r[6],
            "incident": json.loads(r[7]),
        }
        for r in rows
    ]


class _Transaction:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> None:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
