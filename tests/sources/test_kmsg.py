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
