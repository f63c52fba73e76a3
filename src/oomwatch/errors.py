"""The exceptions oomwatch raises, as a tree.

OomwatchError                 anything oomwatch reports with a message instead of a traceback
├── UsageError                the user's mistake: the CLI exits with code 2
│   ├── ConfigError           a setting, the receivers file or the silences file is wrong
│   └── InputError            an input file cannot be opened or read
├── LogUnavailableError       no kernel log could be read on this machine (permissions, absent)
├── SourceError               a log source failed while being followed; the agent reopens it
├── StoreError                the state database failed (read-only, full, corrupt, gone)
└── NotifyError               one delivery attempt failed; `reason` and `retryable` say how

Third-party exceptions are translated where each library is called (httpx and
slack_sdk in `notify/http.py` and `notify/slack.py`, smtplib in `notify/email.py`,
lightkube in `notify/k8s_events.py`, sqlite3 in `store.py`), so the rest of the
code sees only these.
"""

from __future__ import annotations

import enum


class OomwatchError(Exception):
    """Base of every error oomwatch reports with a message instead of a traceback."""


class UsageError(OomwatchError):
    """The user asked for something that cannot work as asked; the CLI exits with code 2."""


class ConfigError(UsageError):
    """A setting, the receivers file or the silences file is invalid; the message names it."""


class InputError(UsageError):
    """An input file is missing, unreadable or not a log (for example a corrupt .gz)."""


class LogUnavailableError(OomwatchError):
    """No source of the kernel log is readable here; the message says what each one answered."""


class SourceError(OomwatchError):
    """A log source failed while it was followed (device gone, journalctl died)."""


class StoreError(OomwatchError):
    """The SQLite state failed: read-only or full disk, a corrupt or deleted file."""


class FailureReason(enum.StrEnum):
    """Why a delivery failed: the label of the failure metric."""

    CLIENT_ERROR = "client_error"  # 4xx other than auth and rate limits: the request is wrong
    AUTH_ERROR = "auth_error"  # 401/403, a bad token or a missing scope
    RATE_LIMITED = "rate_limited"  # 429 or the service's own "ratelimited"
    SERVER_ERROR = "server_error"  # 5xx, 408
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, DNS
    IO = "io"  # a local file could not be written
    BUG = "bug"  # the notifier raised something unexpected: a defect of ours


class NotifyError(OomwatchError):
    """A delivery attempt failed; `retryable` says whether trying again can help.

    `retry_after` is the server's own wait in seconds (Retry-After), when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: FailureReason,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason
        self.retry_after = retry_after
