"""Every real report in the corpus parses field for field (see tests/data/corpus/README.md)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from oomwatch.kernel.scan import LogScanner
from oomwatch.model import OomKill
from tests.conftest import CORPUS

CASES = sorted(p.stem for p in CORPUS.glob("*.log"))
VICTIM_FIELDS = (
    "pid",
    "comm",
    "uid",
    "oom_score_adj",
    "total_vm_kb",
    "anon_rss_kb",
    "file_rss_kb",
    "shmem_rss_kb",
)


def _parse(path: Path, mode: str) -> list[OomKill]:
    scanner = LogScanner(reference=datetime(2024, 12, 31))
    with path.open("rb") as f:
        if mode == "lines":
            return list(scanner.scan_lines(f))
        # a tiny block size puts block boundaries inside every report
        return list(scanner.scan_stream(f, block=257))


def _observed(record: dict[str, Any]) -> dict[str, Any]:
    v = record["victim"]
    got = {key: v[key] for key in VICTIM_FIELDS}
    got.update(
        constraint=record["constraint"],
        oom_memcg=record["oom_memcg"],
        task_memcg=record["task_memcg"],
        trigger_comm=record["trigger"]["comm"] if record["trigger"] else None,
        memcg_limit_kb=record["memcg"]["limit_kb"] if record["memcg"] else None,
        memcg_usage_kb=record["memcg"]["usage_kb"] if record["memcg"] else None,
    )
    return got


@pytest.mark.parametrize("mode", ["lines", "stream"])
@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str, mode: str) -> None:
    """Each kernel kill and user-space kill comes out with exactly the expected values."""
    expected = json.loads((CORPUS / f"{case}.expected.json").read_text())
    records = [k.to_dict() for k in _parse(CORPUS / f"{case}.log", mode)]
    kernel = [r for r in records if r["killer"] == "kernel"]
    userspace = [r for r in records if r["killer"] != "kernel"]

    assert len(kernel) == len(expected["kills"])
    for got, want in zip(kernel, expected["kills"], strict=True):
        assert _observed(got) == {key: want[key] for key in _observed(got)}
        if want["tasks_listed"] is not None:
            assert len(got["tasks"]) == want["tasks_listed"]
            assert got["tasks_complete"] is True
        else:
            assert got["tasks_complete"] is False
        top = [c["pid"] for c in got["top_consumers"]]
        if want["top_rss_pids"]:
            assert top[: len(want["top_rss_pids"])] == want["top_rss_pids"]

    want_us = expected.get("userspace_kills", [])
    assert len(userspace) == len(want_us)
    for got, want in zip(userspace, want_us, strict=True):
        assert got["killer"] == want["killer"]
        assert got["victim"]["pid"] == want["pid"]
        assert got["victim"]["comm"] == want["comm"]
        if "signal" in want:
            assert got["signal"] == want["signal"]
            assert got["victim"]["rss_kb"] == want["rss_kb"]
        if "cgroup" in want:
            assert got["task_memcg"] == want["cgroup"]
            assert got["processes_killed"] == want["processes_killed"]


def test_corpus_has_every_case() -> None:
    """The corpus copy is complete: every log has its expected values."""
    assert len(CASES) >= 13
    for case in CASES:
        assert (CORPUS / f"{case}.expected.json").exists()
