"""The small stages every delivery passes: age, fold/dedup, pace, send once, retry, record.

Each stage is a function or a tiny class with no knowledge of the others; the
lane (`dispatcher.py`) strings them together for one receiver.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.model import Incident
from oomwatch.notify import Notifier

log = logging.getLogger("oomwatch.delivery")

BACKOFF_BASE_S = 1.0
# a receiver that comes back is tried again within a minute, however long it was away
BACKOFF_CAP_S = 60.0
BUG_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Policy:
    """How a receiver groups, repeats and paces its messages."""

    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    min_gap_s: float = 0.0  # Slack: at most one message a second per channel
    pages: bool = False  # wakes a person (PagerDuty, Opsgenie): a drill skips it
    log_sent: bool = True  # a line per message sent (not for the console, which is the line)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt gave: sent, or the error with its verdict."""

    error: NotifyError | None = None

    @property
    def sent(self) -> bool:
        """The receiver took it."""
        return self.error is None


def backoff(
    attempts: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry number `attempts + 1`: exponential, capped, with full jitter."""
    ceiling = min(cap, base * 2.0**attempts)
    return ceiling / 2 + rand() * ceiling / 2


def retry_at(error: NotifyError, attempts: int, now: float, base: float = BACKOFF_BASE_S) -> float:
    """When to try again: the backoff, never sooner than the server's Retry-After."""
    return now + max(backoff(attempts, base=base), error.retry_after or 0.0)


def expired(created: float, now: float, max_age_s: float) -> bool:
    """Whether a delivery has waited longer than the maximum age."""
    return now - created > max_age_s


class BugLog:
    """Logs a notifier's unexpected exception with its traceback, once a minute per receiver."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[str, float] = {}

    def __call__(self, receiver: str, exc: BaseException) -> None:
        """Log `exc` of `receiver`, unless it was logged in the last minute."""
        now = self.clock()
        if now - self._last.get(receiver, -BUG_LOG_EVERY_S) >= BUG_LOG_EVERY_S:
            self._last[receiver] = now
            log.error("notifier %s raised %s (a bug)", receiver, type(exc).__name__, exc_info=exc)


async def attempt(notifier: Notifier, inc: Incident, receiver: str, bug_log: BugLog) -> Outcome:
    """One attempt. Any exception but NotifyError is a bug of ours: it fails this delivery only."""
    try:
        await notifier.send(inc, f"{inc.id}/{receiver}")
    except NotifyError as e:
        return Outcome(e)
    except Exception as e:  # noqa: BLE001 - one notifier's defect must not stop the lane
        bug_log(receiver, e)
        return Outcome(
            NotifyError(
                f"{type(e).__name__} in the notifier", retryable=False, reason=FailureReason.BUG
            )
        )
    return Outcome()


class Pace:
    """A receiver's pace: its minimum gap between messages, and a pause its rate limit asked for."""

    def __init__(self, min_gap_s: float, paused_until: float = 0.0) -> None:
        self.min_gap_s = min_gap_s
        self.paused_until = paused_until
        self.next_slot = 0.0

    def wait_until(self, now: float) -> float | None:
        """When the next message may go, if not now; else take the slot and return None."""
        later = max(self.paused_until, self.next_slot)
        if now < later:
            return later
        if self.min_gap_s > 0:
            self.next_slot = now + self.min_gap_s
        return None

    def pause(self, until: float) -> bool:
        """Stop every message until `until` (a 429's Retry-After); whether it moved the pause."""
        if until > self.paused_until:
            self.paused_until = until
            return True
        return False
