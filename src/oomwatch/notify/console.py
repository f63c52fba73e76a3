"""The console notifier: a readable block per incident on standard output."""

from __future__ import annotations

import sys
from typing import TextIO

from oomwatch.incidents import Incident
from oomwatch.render.escape import terminal


class ConsoleNotifier:
    """Prints incidents for a person watching `oomwatch run` (the default receiver)."""

    def __init__(self, stream: TextIO | None = None, *, name: str = "console") -> None:
        self.name = name
        self.stream = stream or sys.stdout

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Print the title, where, and the explanation."""
        b = incident.body
        lines = [f"[{incident.severity.upper()}] {incident.title}"]
        victim = b.get("victim") or {}
        if victim.get("cmdline"):
            lines.append("  command: " + " ".join(victim["cmdline"]))
        if b.get("where"):
            lines.append(f"  where:   {b['where']}")
        explanation = b.get("explanation") or {}
        lines.extend("  " + d for d in explanation.get("details", []))
        lines.extend("  - " + a for a in explanation.get("advice", []))
        self.stream.write("\n".join(terminal(line) for line in lines) + "\n")
        self.stream.flush()

    async def aclose(self) -> None:
        """Nothing to release."""
