"""The console notifier: a readable block per incident on standard output."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from oomwatch.model import Incident
from oomwatch.notify.common import NotifierKind
from oomwatch.render.escape import terminal

if TYPE_CHECKING:
    from oomwatch.settings import Settings


class ConsoleNotifier:
    """Prints incidents for a person watching `oomwatch run` (the default receiver)."""

    def __init__(self, stream: TextIO | None = None, *, name: str = "console") -> None:
        self.name = name
        self.stream = stream or sys.stdout

    async def send(self, incident: Incident, _delivery_key: str) -> None:
        """Print the title, where, and the explanation."""
        drill = "DRILL " if incident.drill else ""
        lines = [f"[{drill}{incident.severity.upper()}] {incident.title}"]
        k = incident.kill
        if k is not None and k.process.cmdline:
            lines.append("  command: " + " ".join(k.process.cmdline))
        if incident.where:
            lines.append(f"  where:   {incident.where}")
        e = incident.explanation
        if e is not None:
            lines.extend("  " + d for d in e.details)
            lines.extend("  - " + a for a in e.advice)
        self.stream.write("\n".join(terminal(line) for line in lines) + "\n")
        self.stream.flush()

    async def aclose(self) -> None:
        """Nothing to release."""


def _from_settings(s: Settings) -> bool | None:
    return True if s.console else None


KIND = NotifierKind(
    "console",
    bool,
    lambda name, _c, _ctx: ConsoleNotifier(name=name),
    lambda _c: "",
    _from_settings,
)
