"""The cursor of records without kills: stored at most once a second, never lost on stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from oomwatch.enrich.host import this_node
from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.ingest import Ingest
from oomwatch.kernel.scan import LogScanner
from oomwatch.metrics import Metrics
from oomwatch.receivers import RouteConfig
from oomwatch.sampling.conditions import Conditions
from oomwatch.sampling.sampler import PidCache
from oomwatch.settings import Thresholds
from oomwatch.sources import Batch
from oomwatch.store import Store
from tests.conftest import CORPUS


def _ingest(store: Store) -> Ingest:
    return Ingest(
        store,
        IncidentBuilder(this_node("boot", "node-1"), PidCache()),
        Conditions(Thresholds()),
        Metrics(),
        boot_id="boot",
        routes=lambda: RouteConfig(receivers=["hook"]),
        silenced=list,
        on_new=lambda: None,
    )


def test_a_flood_without_kills_costs_one_cursor_write_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 batches of other records: one write; the rest at save_cursor; a kill at once."""
    store = Store(tmp_path / "state.db")
    ingest = _ingest(store)
    writes: list[str | None] = []
    real = store.record

    def counting(*args: object, **kwargs: object) -> object:
        writes.append(kwargs.get("cursor"))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "record", counting)
    scanner = LogScanner()
    line = b"6,%d,1000,-;eth0: link is up, 1000 Mbps full duplex"
    for seq in range(1, 1001):
        ingest.batch(Batch([line % seq], f"boot:{seq}", 0), "kmsg", scanner)
    assert writes == ["boot:1"]  # the first; the next ones wait for the second to pass
    ingest.save_cursor()  # what a sample and a stop do
    assert writes == ["boot:1", "boot:1000"]
    assert store.cursor("kmsg")[0] == "boot:1000"
    ingest.save_cursor()  # nothing new held: no write
    assert len(writes) == 2

    report = (CORPUS / "002-ubuntu313-memcg-mem2.log").read_bytes().split(b"\n")
    ingest.batch(Batch(report, "boot:2000", 0), "file", LogScanner())
    assert writes[-1] == "boot:2000"  # a kill is stored with its cursor at once
    assert store.pending() >= 1


def test_the_warm_up_runs_a_kill_through_and_keeps_nothing(tmp_path: Path) -> None:
    """At start a sample kill is parsed from kmsg records, built, routed, and rolled back.

    The statements the first real kill runs are then prepared; the database, the
    counters and the in-memory handoff hold nothing of the rehearsal.
    """
    from oomwatch.notify.sample import kmsg_records

    store = Store(tmp_path / "state.db")
    ingest = _ingest(store)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    ingest.warm(kmsg_records())
    store.db.set_trace_callback(None)
    ran = " ".join(statements)
    assert "INSERT OR IGNORE INTO incidents" in ran
    assert "INSERT OR IGNORE INTO outbox" in ran
    assert "INSERT INTO cursors" in ran
    assert statements[-1] == "ROLLBACK"
    counts = store.db.execute(
        "SELECT (SELECT COUNT(*) FROM incidents), (SELECT COUNT(*) FROM outbox), "
        "(SELECT COUNT(*) FROM cursors)"
    ).fetchone()
    assert counts == (0, 0, 0)
    assert store.fresh == {}
    assert [m.samples for m in ingest.metrics.kills.collect()] == [[]]  # no kill counted
    # and a real kill afterwards is stored as ever
    (kill,) = LogScanner().feed_live(kmsg_records())
    ingest.record([ingest.builder.kill(kill)])
    assert store.db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (1,)
