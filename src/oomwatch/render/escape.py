"""Escaping and truncation of untrusted text (comm, command lines, cgroup paths) for each sink."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# mrkdwn formats *bold*, _italic_, ~strike~ and `code`; a zero-width space after each
# marker keeps a process name from pairing them, and the text reads the same
_MRKDWN = re.compile(r"([*_~`])")
TRUNCATED = " … [truncated]"
ZWSP = "\u200b"


def terminal(text: str) -> str:
    r"""Text safe to print on a terminal: control characters (escape sequences) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, with a visible marker when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(TRUNCATED), 0)] + TRUNCATED


def slack_escape(text: str) -> str:
    """Slack mrkdwn: `&<>` escaped (no `<!channel>` or links) and no formatting from the text."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MRKDWN.sub(lambda m: m.group(1) + ZWSP, text)
