"""Escaping untrusted text (comm, command lines, cgroup paths) for each sink."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal(text: str) -> str:
    r"""Text safe to print on a terminal: control characters (escape sequences) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
