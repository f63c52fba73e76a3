"""Waiting on facts in asynchronous tests, and running a dispatcher's lanes meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from oomwatch.delivery.dispatcher import Dispatcher


async def until(fact: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait until `fact()` holds (checked every 10 ms), or fail after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not fact():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def run_with(d: Dispatcher, body: Callable[[], Awaitable[None]]) -> None:
    """Run the dispatcher's lanes while `body` runs, then stop them."""

    async def go() -> None:
        task = asyncio.create_task(d.run())
        try:
            await body()
            assert not task.done(), "the dispatcher ended"
        finally:
            task.cancel()

    asyncio.run(go())
