"""The exceptions oomwatch raises, as a tree.

OomwatchError               anything oomwatch reports to the user
├── UsageError              the user's mistake (bad flag value, bad config): exit code 2
│   └── InputError          an input file cannot be opened or read
└── LogUnavailableError     no kernel log could be read on this machine (permissions, absent)
"""

from __future__ import annotations


class OomwatchError(Exception):
    """Base of every error oomwatch reports with a message instead of a traceback."""


class UsageError(OomwatchError):
    """The user asked for something that cannot work as asked; the CLI exits with code 2."""


class InputError(UsageError):
    """An input file is missing, unreadable or not a log (for example a corrupt .gz)."""


class LogUnavailableError(OomwatchError):
    """No source of the kernel log is readable here; the message says what each one answered."""
