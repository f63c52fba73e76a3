"""systemd's notification protocol (sd_notify(3)): readiness, watchdog, status.

A datagram to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace) is
the whole protocol, so no library is needed. With `Type=notify` the agent says
`READY=1` once its log source is open and its database ready; with `WatchdogSec=`
it sends `WATCHDOG=1` only while the health probe would say healthy (the loop beats,
and no task such as the follower or the dispatcher is down), so systemd restarts an
agent that is alive but no longer working.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from oomwatch.server import HealthState

log = logging.getLogger("oomwatch")

__all__ = ["Notify", "notify_forever"]
STATUS_EVERY_S = 10.0  # without a watchdog, how often the status line is refreshed


class Notify:
    """The socket systemd gave, if any."""

    def __init__(self, env: Mapping[str, str]) -> None:
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + raw[1:] if raw.startswith("@") else raw
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None

    @property
    def enabled(self) -> bool:
        """Whether systemd listens."""
        return bool(self.address)

    def send(self, *fields: str) -> None:
        """One datagram; a failure is logged, never raised (systemd may be restarting)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            try:
                s.sendto("\n".join(fields).encode(), self.address)
            except OSError as e:
                log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), e)


async def notify_forever(n: Notify, health: HealthState, status: Callable[[], str]) -> None:
    """READY=1 once ready, then WATCHDOG=1 (while healthy) and STATUS= every period."""
    period = n.watchdog_s / 2 if n.watchdog_s else STATUS_EVERY_S
    ready = False
    while True:
        # one line: a newline in it would be read as a field of its own (READY=1, say)
        fields = ["STATUS=" + " ".join(status().splitlines())]
        if health.ready and not ready:
            ready = True
            fields.insert(0, "READY=1")
        if n.watchdog_s and health.healthy:
            fields.append("WATCHDOG=1")
        n.send(*fields)
        await asyncio.sleep(min(period, 0.5) if not ready else period)
