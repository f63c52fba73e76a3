"""Incident bodies on disk: compressed, read back unchanged, older text bodies still read."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import NodeInfo
from oomwatch.notify.sample import REPORT
from oomwatch.sampling.sampler import PidCache
from oomwatch.store import FRESH, Store
from oomwatch.store.schema import encode_body


def test_a_kill_is_stored_compressed_and_read_back_unchanged(tmp_path: Path) -> None:
    """The stored body is a zlib BLOB a third of the JSON; the payload read back is equal."""
    (kill,) = LogScanner().scan_lines(REPORT.splitlines())
    inc = IncidentBuilder(NodeInfo("node-1", "6.1.0-test", "boot-1"), PidCache()).kill(kill)
    store = Store(tmp_path / "oomwatch.db")
    store.record([inc], [])
    (stored,) = store.db.execute("SELECT body FROM incidents").fetchone()
    assert stored == inc.body_text()  # a kill's transaction keeps the text: compressed later
    assert store.incidents() == [json.loads(json.dumps(inc.to_json()))]
    assert store.compress_bodies() == 1
    (stored,) = store.db.execute("SELECT body FROM incidents").fetchone()
    assert isinstance(stored, bytes)
    text = json.dumps(inc.body(), ensure_ascii=False).encode()
    assert len(stored) * 2 < len(text), (len(stored), len(text))
    (back,) = store.incidents()
    assert back == json.loads(json.dumps(inc.to_json()))
    assert store.compress_bodies() == 0  # each row is looked at once


def test_bodies_are_compressed_in_batches_and_one_changed_meanwhile_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows go by rowid, a batch at a time; a body rewritten while compressing stays as written."""
    (kill,) = LogScanner().scan_lines(REPORT.splitlines())
    builder = IncidentBuilder(NodeInfo("node-1", "6.1.0-test", "boot-1"), PidCache())
    store = Store(tmp_path / "oomwatch.db")
    for i in range(5):
        store.record([dataclasses.replace(builder.kill(kill), id=f"kill:{i}")], [])
    assert store.compress_bodies(batch=2) == 2
    assert store.compress_bodies(batch=2) == 2

    def rewritten_meanwhile(text: str) -> bytes:
        store.db.execute("UPDATE incidents SET body = '{\"changed\": 1}' WHERE id = 'kill:4'")
        return encode_body(text)

    monkeypatch.setattr("oomwatch.store.encode_body", rewritten_meanwhile)
    assert store.compress_bodies(batch=2) == 0
    bodies = dict(store.db.execute("SELECT id, body FROM incidents"))
    assert bodies["kill:4"] == '{"changed": 1}'
    assert all(isinstance(bodies[f"kill:{i}"], bytes) for i in range(4))
    assert store.compress_bodies() == 0  # looked at once: a later change is not its business


def test_a_body_stored_as_json_text_by_an_older_version_is_read(tmp_path: Path) -> None:
    """Databases written before compression hold JSON text: read as before."""
    (kill,) = LogScanner().scan_lines(REPORT.splitlines())
    inc = IncidentBuilder(NodeInfo("node-1", "6.1.0-test", "boot-1"), PidCache()).kill(kill)
    store = Store(tmp_path / "oomwatch.db")
    store.record([inc], [])
    store.db.execute("UPDATE incidents SET body = ?", (json.dumps(inc.body()),))
    (back,) = store.incidents()
    assert back["incident"]["victim"]["pid"] == inc.to_json()["incident"]["victim"]["pid"]
    assert back == json.loads(json.dumps(inc.to_json()))


def test_a_first_delivery_takes_the_incident_just_stored_and_later_ones_decode_it_equal(
    tmp_path: Path,
) -> None:
    """A kill just stored goes out as built (no decode); an older one decodes equal."""
    (kill,) = LogScanner().scan_lines(REPORT.splitlines())
    builder = IncidentBuilder(NodeInfo("node-1", "6.1.0-test", "boot-1"), PidCache())
    store = Store(tmp_path / "oomwatch.db")
    built = []
    for i in range(FRESH + 5):
        inc = dataclasses.replace(builder.kill(kill), id=f"kill:{i}")
        store.record([inc], ["webhook"])
        built.append(inc)
    (newest,) = [
        d for d in store.due(time.time() + 1, "webhook", 100) if d.incident.id == built[-1].id
    ]
    assert newest.incident is built[-1]
    oldest = store.due(time.time() + 1, "webhook", 1)[0]
    assert oldest.incident.id == "kill:0"
    assert oldest.incident is not built[0]
    assert oldest.incident.to_json() == built[0].to_json()
    assert len(store.fresh) == FRESH
