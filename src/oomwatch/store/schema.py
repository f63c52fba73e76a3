"""The state database's schema and records: tables, migrations, rows to incidents."""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oomwatch.model import Incident
from oomwatch.model.plain import compact

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
    body TEXT NOT NULL,  -- zlib-compressed JSON (a BLOB); JSON text in older databases
    category TEXT NOT NULL DEFAULT 'event',
    pid INTEGER,
    unplaced INTEGER NOT NULL DEFAULT 0,
    drill INTEGER NOT NULL DEFAULT 0
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
    done_at REAL,
    inflight_at REAL,
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
CREATE TABLE IF NOT EXISTS pauses (
    receiver TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS threads (
    receiver TEXT NOT NULL,
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    count INTEGER NOT NULL,
    victims INTEGER NOT NULL DEFAULT 1,
    head TEXT NOT NULL DEFAULT '["", []]',
    counted TEXT,
    PRIMARY KEY (receiver, key)
);
"""


# the columns `incident_from_row` reads, in its order
INCIDENT_COLUMNS = (
    "i.id, i.key, i.kind, i.category, i.status, i.severity, i.title, i.detected_at, i.drill, i.body"
)
SELECT_DELIVERIES = (
    "SELECT o.id, o.receiver, o.attempts, o.created, o.inflight_at, i.id, i.key, i.kind, "
    "i.category, i.status, i.severity, i.title, i.detected_at, i.drill, i.body "
    "FROM outbox o JOIN incidents i ON i.id = o.incident_id WHERE "
)
SELECT_INCIDENTS = (
    "SELECT i.id, i.key, i.kind, i.category, i.status, i.severity, i.title, i.detected_at, "
    "i.drill, i.body FROM incidents i WHERE detected_at >= ? AND detected_at < ? "
    "ORDER BY detected_at DESC LIMIT ?"
)
# columns later versions added to a state file an earlier one made
MIGRATIONS = (
    ("outbox", "group_key", "TEXT"),
    ("groups", "alias", "TEXT"),
    ("incidents", "category", "TEXT NOT NULL DEFAULT 'event'"),
    ("incidents", "pid", "INTEGER"),
    ("incidents", "unplaced", "INTEGER NOT NULL DEFAULT 0"),
    ("incidents", "drill", "INTEGER NOT NULL DEFAULT 0"),
    ("threads", "victims", "INTEGER NOT NULL DEFAULT 1"),
    ("threads", "head", "TEXT NOT NULL DEFAULT '[\"\", []]'"),
    ("outbox", "done_at", "REAL"),
    ("outbox", "inflight_at", "REAL"),
    ("threads", "counted", "TEXT"),
)


@dataclass(frozen=True, slots=True)
class GroupState:
    """What was last sent to a receiver for a key."""

    last_sent: float
    last_status: str
    last_severity: str
    followup_at: float | None


def encode_body(body: Mapping[str, Any] | str) -> bytes:
    """An incident's body as stored: compact JSON (or that text), compressed (1-2 KB, not 6)."""
    text = body if isinstance(body, str) else compact(body)
    return zlib.compress(text.encode(), 6)


def decode_body(value: bytes | str) -> Any:
    """A stored body back; JSON text is what databases written before compression hold."""
    return json.loads(zlib.decompress(value) if isinstance(value, bytes) else value)


def incident_from_row(row: Sequence[Any]) -> Incident:
    """An incident from the columns of `INCIDENT_COLUMNS`, in that order."""
    return Incident.from_json(
        {
            "id": row[0],
            "key": row[1],
            "kind": row[2],
            "category": row[3],
            "status": row[4],
            "severity": row[5],
            "title": row[6],
            "detected_at": row[7],
            "drill": bool(row[8]),
            "incident": decode_body(row[9]),
        }
    )


@dataclass(frozen=True, slots=True)
class Folded:
    """Repeats of one key waiting for their follow-up."""

    ids: list[int]
    attempts: int
    incident_ids: list[str]
    pids: list[int]
    last: Incident
    unplaced: int = 0  # kills whose cgroup the kernel did not print (rate-limited reports)
    # rows of a follow-up whose attempt a crash cut off, and when it began
    inflight: list[int] = field(default_factory=list)
    inflight_incident_ids: list[str] = field(default_factory=list)
    inflight_pids: list[int] = field(default_factory=list)
    inflight_at: float | None = None
    created: list[float] = field(default_factory=list)  # when each row was stored, as ids


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending delivery of an incident to a receiver."""

    id: int
    receiver: str
    attempts: int
    created: float
    incident: Incident
    inflight_at: float | None = None  # an attempt began then and its outcome was never recorded


def read_deliveries(db: sqlite3.Connection, incident_id: str) -> list[dict[str, Any]]:
    """Where one incident stands with each receiver (for `oomwatch drill`)."""
    rows = db.execute(
        "SELECT receiver, state, attempts, last_error, done_at FROM outbox "
        "WHERE incident_id = ? ORDER BY receiver",
        (incident_id,),
    ).fetchall()
    keys = ("receiver", "state", "attempts", "error", "done_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def read_incidents(
    db: sqlite3.Connection, since: float, limit: int, before: float = float("inf")
) -> list[dict[str, Any]]:
    """Incidents detected in [since, before), newest first, as payloads (API and tests)."""
    rows = db.execute(SELECT_INCIDENTS, (since, before, limit)).fetchall()
    return [incident_from_row(r).to_json() for r in rows]


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception), under `lock` when given."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock | None) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> None:
        if self.lock is not None:
            self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            if self.lock is not None:
                self.lock.release()
