"""Follow the kernel messages in the journal through `journalctl -k -f -o json`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from oomwatch.sources import Batch

_CURSOR = re.compile(rb'"__CURSOR"\s*:\s*"([^"]+)"')
MAX_LINE = 1 << 20


class JournaldFollower:
    """Runs journalctl as a child; the cursor is journald's own (`__CURSOR`)."""

    name = "journald"

    def __init__(
        self, cursor: str | None, *, from_end: bool = False, journalctl: str = "journalctl"
    ) -> None:
        self._cursor = cursor
        self._from_end = from_end and cursor is None
        self._journalctl = journalctl
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def cursor(self) -> str | None:
        """The cursor of the last record read."""
        return self._cursor

    def argv(self) -> list[str]:
        """The journalctl command line for the saved position."""
        argv = [self._journalctl, "-k", "-f", "-o", "json", "--no-pager", "-q"]
        if self._cursor:
            # --no-tail: with -f, journalctl shows only the last 10 records otherwise,
            # and a report made while the agent was stopped is longer than that
            return [*argv, f"--after-cursor={self._cursor}", "--no-tail"]
        if self._from_end:
            return [*argv, "-n", "0"]
        return [*argv, "-b", "--no-tail"]

    async def batches(self) -> AsyncIterator[Batch]:
        """Batches of JSON lines as journalctl prints them."""
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=MAX_LINE,
        )
        stdout = self._proc.stdout
        if stdout is None:
            raise ConnectionError("journalctl has no output pipe")
        partial = b""
        while True:
            chunk = await stdout.read(1 << 16)  # returns as soon as anything is there
            if not chunk:
                raise ConnectionError(f"journalctl exited with code {await self._proc.wait()}")
            parts = (partial + chunk).split(b"\n")
            partial = parts.pop()
            if len(partial) > MAX_LINE:
                partial = b""  # no journal record is this long; journalctl would not print it
            if not parts:
                continue
            m = _CURSOR.search(parts[-1])
            if m:
                self._cursor = m.group(1).decode()
            yield Batch(parts, self._cursor)

    def close(self) -> None:
        """End the journalctl child (ours, by its pid)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
