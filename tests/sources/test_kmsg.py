"""The /dev/kmsg follower on the real kernel log: every record once, in order, as it comes."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from oomwatch.sources.kmsg import KmsgFollower
from tests.kmsg_tail import write_kmsg

KMSG = Path("/dev/kmsg")
pytestmark = pytest.mark.skipif(
    not (os.geteuid() == 0 and KMSG.exists()), reason="needs root to write to /dev/kmsg"
)


def test_records_that_come_while_a_batch_is_handled_are_read_once_in_order() -> None:
    """After it has read all there was, the follower waits; what comes next wakes it."""
    tag = uuid.uuid4().hex
    first = [f"oomwatch-test {tag} a{i}" for i in range(50)]
    later = [f"oomwatch-test {tag} b{i}" for i in range(50)]
    follower = KmsgFollower(KMSG, "boot", None, from_end=True)

    async def follow() -> list[str]:
        seen: list[str] = []
        batches = follower.batches()
        write_kmsg(first)
        wrote_later = False
        async with asyncio.timeout(20):
            async for batch in batches:
                seen += [ln.decode() for ln in batch.lines if tag.encode() in ln]
                if len(seen) == len(first) and not wrote_later:
                    # written while this batch is handled, after the follower drained
                    write_kmsg(later)
                    wrote_later = True
                if len(seen) >= len(first) + len(later):
                    return seen
        return seen

    try:
        seen = asyncio.run(follow())
    finally:
        follower.close()
    assert [s.split(";", 1)[1] for s in seen] == first + later


def _read_all(follower: KmsgFollower) -> tuple[list[bytes], int]:
    """Every line the follower has now, and the records it counted lost on the way."""
    lines: list[bytes] = []
    lost = 0
    while True:
        batch = follower.read_available()
        lines += batch.lines
        lost += batch.lost
        if follower.drained and not batch.lines:
            return lines, lost


def test_a_resumed_follower_reads_after_its_cursor_and_counts_the_overwritten() -> None:
    """Records up to the cursor are skipped; a cursor older than the ring counts the gap."""
    tag = uuid.uuid4().hex.encode()
    texts = [f"oomwatch-test {tag.decode()} r{i}" for i in range(30)]
    first = KmsgFollower(KMSG, "boot", None, from_end=True)
    try:
        write_kmsg(texts)
        lines, _ = _read_all(first)
    finally:
        first.close()
    ours = [ln for ln in lines if tag in ln]
    assert [ln.split(b";", 1)[1].decode() for ln in ours] == texts
    seqs = [int(ln.split(b",")[1]) for ln in ours]

    resumed = KmsgFollower(KMSG, "boot", f"boot:{seqs[9]}")  # handled up to the tenth
    try:
        lines, lost = _read_all(resumed)
    finally:
        resumed.close()
    assert [int(ln.split(b",")[1]) for ln in lines if tag in ln] == seqs[10:]
    assert int(lines[0].split(b",")[1]) == seqs[9] + 1
    assert lost == 0

    oldest = _oldest_seq()
    behind = KmsgFollower(KMSG, "boot", "boot:0")  # from before the ring's first record
    try:
        lines, lost = _read_all(behind)
    finally:
        behind.close()
    # exact against the ring when the follower opened it; the kernel may write meanwhile
    assert oldest - 1 <= lost <= int(lines[0].split(b",")[1]) - 1
    assert [int(ln.split(b",")[1]) for ln in lines if tag in ln] == seqs


def _oldest_seq() -> int:
    fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                return int(os.read(fd, 16384).split(b",")[1])
            except BrokenPipeError:
                continue
    finally:
        os.close(fd)
