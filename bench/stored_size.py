"""Benchmark: the bytes an incident takes in the state database, and what storing costs.

Every kill of the test corpus is built as the agent builds it: beside a real sample
of this machine (its top consumers, their command lines and users) and with the
victim known to the pid cache (a full command line and a 30-sample RSS history), so
that the body holds what a live kill's holds. Prints the mean and median size of
the body as JSON text (the baseline: how it was stored before) and as stored now
(compact JSON, zlib-compressed), their ratio, and the median time to encode and to
decode one body. Target: a stored body of at most 2 KB on average.

    python bench/stored_size.py
"""

from __future__ import annotations

import json
import statistics
import time
from array import array
from pathlib import Path

from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import Incident, NodeInfo
from oomwatch.sampling.sampler import PidCache, Sampler, _Entry
from oomwatch.store.schema import decode_body, encode_body

ROOT = Path(__file__).resolve().parent.parent
HISTORY = 30  # the pid cache's default


def incidents() -> list[Incident]:
    """Every corpus kill, built beside a real sample of this machine."""
    cache = PidCache()
    sampler = Sampler(cache=cache)
    snapshot = sampler.sample()
    with cache.lock:
        known = max(cache.entries.values(), key=lambda e: len(" ".join(e.info.cmdline or ())))
    builder = IncidentBuilder(NodeInfo("node-1", "6.1.0-bench", "boot-1"), cache)
    builder.snapshot = snapshot
    out = []
    for log in sorted((ROOT / "tests" / "data" / "corpus").glob("*.log")):
        for kill in LogScanner().scan_lines(log.read_text(errors="replace").splitlines()):
            if kill.victim.pid is not None:
                rss = array("I", (1000 * (i + 1) for i in range(HISTORY)))
                times = array("I", (10 * i for i in range(HISTORY)))
                cache.put(kill.victim.pid, _Entry(known.info, rss, times, time.time()))
            out.append(builder.kill(kill))
    return out


def median_us(fn: object, args: list[object]) -> float:
    """The median time of one call, in microseconds."""
    assert callable(fn)
    times = []
    for a in args:
        t0 = time.perf_counter()
        fn(a)
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def main() -> None:
    """Print the sizes, their ratio to the JSON text, and the encode/decode time."""
    incs = incidents()
    bodies = [inc.body() for inc in incs]
    text = [len(json.dumps(b, ensure_ascii=False).encode()) for b in bodies]
    stored = [encode_body(b) for b in bodies]
    sizes = [len(s) for s in stored]
    assert all(
        decode_body(s) == json.loads(json.dumps(b)) for s, b in zip(stored, bodies, strict=True)
    )
    print(f"{len(incs)} corpus kills, built beside a real sample of this machine")
    print(
        f"body as JSON text (baseline): mean {statistics.mean(text):,.0f} B, "
        f"median {statistics.median(text):,.0f} B, max {max(text):,} B"
    )
    print(
        f"body as stored:               mean {statistics.mean(sizes):,.0f} B, "
        f"median {statistics.median(sizes):,.0f} B, max {max(sizes):,} B"
    )
    ratio = statistics.mean(sizes) / statistics.mean(text)
    print(f"ratio stored/text (mean): {ratio:.2f}; target mean <= 2,000 B")
    print(
        f"encode: median {median_us(encode_body, list(bodies)):.0f} us; "
        f"decode: median {median_us(decode_body, list(stored)):.0f} us per body"
    )


if __name__ == "__main__":
    main()
