"""The supervisor: every loop of the agent runs under it, and a loop that dies is restarted.

A task that ends with an exception is logged with its traceback, counted, and
restarted after a delay; while it is down, `/-/healthy` says so (and names it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from oomwatch.metrics import Metrics
from oomwatch.server import HealthState

log = logging.getLogger("oomwatch")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    """Starts named tasks, restarts the ones that die, and keeps the health state true."""

    def __init__(self, health: HealthState, metrics: Metrics, delay_s: float) -> None:
        self.health = health
        self.metrics = metrics
        self.delay_s = delay_s
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: TaskFactory) -> None:
        """Run `factory()` as the task `name`, for as long as the supervisor runs."""
        self.tasks[name] = asyncio.get_running_loop().create_task(
            self._keep(name, factory), name=name
        )

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        while True:
            self.health.up(name)
            self.metrics.task_up.labels(name).set(1)
            try:
                await factory()
                log.warning("task %s ended; restarting in %.0f s", name, self.delay_s)
                reason = "ended"
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("task %s died; restarting in %.0f s", name, self.delay_s)
                reason = f"died: {type(e).__name__}"
            self.health.down(name, reason)
            self.metrics.task_up.labels(name).set(0)
            self.metrics.task_restarts.labels(name).inc()
            await asyncio.sleep(self.delay_s)

    async def stop(self) -> None:
        """Cancel every task and wait for them."""
        for t in self.tasks.values():
            t.cancel()
        for t in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.tasks.clear()
