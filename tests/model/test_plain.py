"""`as_dict` gives what `dataclasses.asdict` gives, for every record a payload is made of."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, NamedTuple

from oomwatch.kernel.scan import LogScanner
from oomwatch.model.plain import as_dict
from tests.conftest import CORPUS
from tests.model.test_incident import kills


class Pair(NamedTuple):
    """A named tuple, which asdict rebuilds as its own type."""

    a: int
    b: list[int]


@dataclasses.dataclass
class Odd:
    """Every shape of value a dataclass may hold."""

    when: datetime
    names: tuple[str, ...]
    table: dict[str, list[int]]
    pair: Pair
    nested: list[Odd] = dataclasses.field(default_factory=list)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_corpus_kills_and_incident_facts() -> None:
    """Kills of every corpus file, and the facts of built incidents, convert alike."""
    n = 0
    for path in sorted(CORPUS.glob("*.log")):
        for kill in LogScanner().scan_lines(path.read_bytes().splitlines()):
            assert same(as_dict(kill), dataclasses.asdict(kill)), path.name
            n += 1
    for inc in kills().values():
        assert same(as_dict(inc.facts), dataclasses.asdict(inc.facts))
    assert n > 20


def test_odd_values_are_copied_as_asdict_copies_them() -> None:
    """Named tuples, dicts, lists and datetimes: the same types, and mutable ones not shared."""
    inner = Odd(datetime(2026, 1, 2, tzinfo=UTC), ("a",), {"k": [1]}, Pair(1, [2]))
    odd = Odd(datetime(2026, 1, 1, tzinfo=UTC), ("x", "y"), {"k": [1, 2]}, Pair(3, [4]), [inner])
    got = as_dict(odd)
    assert same(got, dataclasses.asdict(odd))
    assert got["table"]["k"] is not odd.table["k"]
    assert got["pair"].b is not odd.pair.b
