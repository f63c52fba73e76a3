"""The console notifier: incidents on standard output, for a person or for a log pipeline."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal, TextIO

from oomwatch.model import Incident
from oomwatch.notify.common import Context, NotifierKind
from oomwatch.render import console as show

if TYPE_CHECKING:
    from oomwatch.settings import Settings

Style = Literal["auto", "terminal", "line", "json"]
KEYS_KEPT = 4096  # keys whose first kill a repeat can point at; the oldest are forgotten


class ConsoleNotifier:
    """Prints incidents: a coloured block on a terminal, one line in a log, or JSON."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        name: str = "console",
        style: Style = "auto",
        colour: bool | None = None,
    ) -> None:
        self.name = name
        self.stream = stream or sys.stdout
        if style == "auto":
            style = "terminal" if _isatty(self.stream) else "line"
        self.style = style
        self.colour = (
            colour
            if colour is not None
            else style == "terminal"
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
        )
        self._first: OrderedDict[str, dt.datetime] = OrderedDict()
        self._json: logging.Formatter | None = None

    async def send(self, incident: Incident, _delivery_key: str) -> None:
        """Print the incident in the console's style."""
        first = self._repeat_of(incident)
        if self.style == "json":
            text = self._as_json(incident) + "\n"
        elif self.style == "terminal":
            now = dt.datetime.now().astimezone()
            text = show.block(incident, first=first, colour=self.colour, now=now)
        else:
            text = show.line(incident, first=first)
        self.stream.write(text)
        self.stream.flush()

    def _repeat_of(self, inc: Incident) -> dt.datetime | None:
        """When the first kill of this key was shown, if this is a later one."""
        if inc.kind != "oom_kill" or inc.followup is not None:
            return None
        first = self._first.get(inc.key)
        if first is None:
            self._first[inc.key] = show.when(inc)
            if len(self._first) > KEYS_KEPT:
                self._first.popitem(last=False)
        return first

    def _as_json(self, inc: Incident) -> str:
        """The incident as a log record of its own, shaped like the agent's JSON log lines."""
        if self._json is None:
            from oomwatch.logsetup import json_formatter

            self._json = json_formatter()
        level = logging.INFO if inc.status == "resolved" else logging.WARNING
        record = logging.makeLogRecord(
            {
                "name": "oomwatch.incident",
                "levelno": level,
                "levelname": logging.getLevelName(level),
                "msg": inc.title,
                "incident": inc.to_json(),
            }
        )
        return self._json.format(record)

    async def aclose(self) -> None:
        """Nothing to release."""


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _build(name: str, _config: bool, ctx: Context) -> ConsoleNotifier:
    style: Style = "json" if ctx.log_format == "json" else "auto"
    return ConsoleNotifier(name=name, style=style)


KIND = NotifierKind("console", bool, _build, lambda _c: "", local=True)


def wanted(s: Settings) -> bool:
    """Whether the environment leaves the console on (everything but OOMWATCH_CONSOLE=off)."""
    return s.console is not False
