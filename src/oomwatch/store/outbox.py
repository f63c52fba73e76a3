"""The outbox: pending deliveries, their retries, and the groups that fold repeats."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

from oomwatch.model import Incident
from oomwatch.store.schema import (
    SELECT_DELIVERIES,
    Delivery,
    Folded,
    GroupState,
    Transaction,
    incident_from_row,
)


class Outbox:
    """The outbox's and the groups' queries; the Store mixes this in."""

    db: sqlite3.Connection
    lock: threading.RLock
    # the incidents stored last, by id: their first deliveries take them from here
    # rather than decoding what was just encoded (a kill's path to its receivers)
    fresh: dict[str, Incident]

    def _tx(self) -> Transaction:
        return Transaction(self.db, self.lock)

    def due(self, now: float, receiver: str, limit: int = 100) -> list[Delivery]:
        """A receiver's pending deliveries whose time has come, oldest first."""
        return self._deliveries(
            "o.state = 'pending' AND o.receiver = ? AND o.next_at <= ?", (receiver, now), limit
        )

    def _deliveries(self, where: str, args: tuple[Any, ...], limit: int) -> list[Delivery]:
        # `where` is one of this module's fixed clauses; values go in as parameters
        sql = SELECT_DELIVERIES + where + " ORDER BY o.id LIMIT ?"
        rows = self.db.execute(sql, (*args, limit)).fetchall()
        fresh = self.fresh
        return [
            Delivery(r[0], r[1], r[2], r[3], fresh.get(r[5]) or incident_from_row(r[5:]), r[4])
            for r in rows
        ]

    def next_due(self, receiver: str) -> float | None:
        """When a receiver's next pending delivery or follow-up is due."""
        return earliest(*self.next_times(receiver))

    def next_times(self, receiver: str) -> tuple[float | None, float | None]:
        """When a receiver's next pending delivery is due, and its next follow-up."""
        row = self.db.execute(
            "SELECT (SELECT MIN(next_at) FROM outbox WHERE state = 'pending' AND receiver = ?), "
            "(SELECT MIN(followup_at) FROM groups WHERE followup_at IS NOT NULL "
            "AND receiver = ?)",
            (receiver, receiver),
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def orphans(self, receivers: Iterable[str]) -> int:
        """Fail the waiting deliveries of receivers no longer configured; how many."""
        keep = set(receivers)
        rows = self.db.execute(
            "SELECT DISTINCT receiver FROM outbox WHERE state IN ('pending', 'folded')"
        ).fetchall()
        failed = 0
        for (gone,) in (r for r in rows if r[0] not in keep):
            cur = self.db.execute(
                "UPDATE outbox SET state = 'failed', last_error = 'receiver no longer configured' "
                "WHERE state IN ('pending', 'folded') AND receiver = ?",
                (gone,),
            )
            self.db.execute("UPDATE groups SET followup_at = NULL WHERE receiver = ?", (gone,))
            failed += cur.rowcount
        return failed

    def pause(self, receiver: str) -> float:
        """Until when a receiver's lane is paused by its rate limit (0: not paused)."""
        row = self.db.execute("SELECT until FROM pauses WHERE receiver = ?", (receiver,)).fetchone()
        return float(row[0]) if row else 0.0

    def set_pause(self, receiver: str, until: float) -> None:
        """Pause a receiver's lane until `until` (kept across restarts)."""
        self.db.execute(
            "INSERT INTO pauses VALUES (?, ?) "
            "ON CONFLICT (receiver) DO UPDATE SET until = excluded.until",
            (receiver, until),
        )

    def pending(self, receiver: str | None = None) -> int:
        """How many deliveries wait (of one receiver, or of all)."""
        if receiver is None:
            row = self.db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()
        else:
            row = self.db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND receiver = ?", (receiver,)
            ).fetchone()
        return int(row[0])

    def inflight(self, delivery_ids: Iterable[int], at: float) -> None:
        """An attempt of these deliveries begins: a crash before its outcome leaves the mark."""
        self.db.executemany(
            "UPDATE outbox SET inflight_at = ? WHERE id = ?", [(at, i) for i in delivery_ids]
        )

    def sent(self, delivery_id: int) -> None:
        """A delivery succeeded."""
        self.db.execute(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = ?, "
            "inflight_at = NULL WHERE id = ?",
            (time.time(), delivery_id),
        )

    def retry(self, delivery_id: int, next_at: float, error: str, *, unknown: bool = False) -> None:
        """A delivery failed in a way a retry can fix; try again at `next_at`.

        `unknown`: the receiver may have taken it (a timeout, a cut connection), so
        the in-flight mark stays and the next attempt looks first.
        """
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ?, "
            "inflight_at = CASE WHEN ? THEN inflight_at END WHERE id = ?",
            (next_at, error, unknown, delivery_id),
        )

    def retry_now(self, receiver: str, now: float) -> int:
        """The receiver answers again: its deliveries waiting out a backoff are due now."""
        cur = self.db.execute(
            "UPDATE outbox SET next_at = ? WHERE receiver = ? AND state = 'pending' "
            "AND attempts > 0 AND next_at > ?",
            (now, receiver, now),
        )
        return cur.rowcount

    def give_up(self, delivery_id: int, state: str, error: str) -> None:
        """A delivery failed for good (`failed`) or grew too old (`dropped`)."""
        self.db.execute(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, last_error = ?, done_at = ?, "
            "inflight_at = NULL WHERE id = ?",
            (state, error, time.time(), delivery_id),
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

    def due_followups(self, now: float, receiver: str) -> list[str]:
        """Keys of a receiver's follow-ups whose time has come."""
        rows = self.db.execute(
            "SELECT key FROM groups WHERE receiver = ? AND followup_at IS NOT NULL AND "
            "followup_at <= ?",
            (receiver, now),
        ).fetchall()
        return [r[0] for r in rows]

    def folded(self, receiver: str, key: str) -> Folded | None:
        """The repeats folded for a follow-up: their rows and pids, and the last one whole.

        Only the last incident's body is read: a storm folds thousands of kills.
        """
        rows = self.db.execute(
            "SELECT o.id, o.attempts, i.id, i.pid, i.unplaced, o.inflight_at, o.created "
            "FROM outbox o "
            "JOIN incidents i ON i.id = o.incident_id WHERE o.state = 'folded' AND "
            "o.receiver = ? AND COALESCE(o.group_key, i.key) = ? ORDER BY o.id",
            (receiver, key),
        ).fetchall()
        if not rows:
            return None
        # the body told of is the last one whose cgroup the kernel printed
        placed = [r for r in rows if not r[4]]
        flying = [r for r in rows if r[5] is not None]
        (last,) = self._deliveries("o.id = ?", ((placed or rows)[-1][0],), 1)
        return Folded(
            ids=[r[0] for r in rows],
            attempts=max(r[1] for r in rows),
            incident_ids=[r[2] for r in rows],
            pids=[int(r[3]) for r in rows if r[3] is not None],
            last=last.incident,
            unplaced=len(rows) - len(placed),
            inflight=[r[0] for r in flying],
            inflight_incident_ids=[r[2] for r in flying],
            inflight_pids=[int(r[3]) for r in flying if r[3] is not None],
            inflight_at=max((r[5] for r in flying), default=None),
            created=[r[6] for r in rows],
        )

    def followed(self, ids: list[int]) -> None:
        """These folded repeats went out in a follow-up."""
        self.db.executemany(
            "UPDATE outbox SET state = 'followed', inflight_at = NULL WHERE id = ?",
            [(i,) for i in ids],
        )

    def postpone_followup(self, receiver: str, key: str, at: float | None) -> None:
        """Try the follow-up again at `at` (None: there is nothing left to follow up)."""
        self.db.execute(
            "UPDATE groups SET followup_at = ? WHERE receiver = ? AND key = ?", (at, receiver, key)
        )

    def defer(self, delivery_id: int, at: float) -> None:
        """Not yet (rate limit): try at `at`, without counting an attempt."""
        self.db.execute("UPDATE outbox SET next_at = ? WHERE id = ?", (at, delivery_id))


def earliest(*times: float | None) -> float | None:
    """The earliest of the times given; None when none is."""
    return min((t for t in times if t is not None), default=None)
