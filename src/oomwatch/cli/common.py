"""What the commands share: exit codes and durations."""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
DURATION = re.compile(r"(\d+)\s*(s|sec|m|min|h|d|w)", re.I)
UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
