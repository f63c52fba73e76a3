"""Slack: a bot token (chat.postMessage, threads for repeats, chat.update) or an incoming webhook.

Limits (https://docs.slack.dev/reference/block-kit/blocks): 50 blocks a message,
3,000 characters a section text, 10 fields of 2,000 characters, 150 for a header;
the top-level `text` is kept under 3,000 here. The blocks are built with
`slack_sdk.models.blocks`, which checks those shapes. Untrusted text is escaped
for mrkdwn: no mention, no link and no formatting from a process name.

One attempt is one message: the first of a key goes to the channel, repeats into
its thread. Updating the first message with the running counts is best-effort:
its failure is logged and never makes the reply go out again.

Each message carries its delivery key in Slack message metadata. After a crash
cut an attempt off, `recover` looks the key up in the channel's history (or the
thread's replies) before anything is posted again: found means sent. Without the
history scope it says so once and the lane posts again (at least once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.model import Incident
from oomwatch.notify.common import (
    Context,
    HttpUrl,
    NotifierKind,
    mask,
    masked_url,
    need,
    read_secret,
)
from oomwatch.notify.facts import pids
from oomwatch.notify.http import header, parse_retry_after, status_error, transport_words
from oomwatch.notify.slack_blocks import blocks, counts_text, headline
from oomwatch.notify.slack_webhook import SlackWebhookNotifier
from oomwatch.strict import Strict, checked

if TYPE_CHECKING:
    from oomwatch.settings import Settings

__all__ = ["SlackBotNotifier", "SlackWebhookNotifier", "blocks", "counts_text", "headline"]

log = logging.getLogger("oomwatch.notify.slack")

RETRYABLE_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "missing_scope"})
EVENT_TYPE = "oomwatch_delivery"
# how far before the cut-off attempt the lookup starts: Slack's clock is not ours
LOOKBACK_S = 120.0
LOOKUP_PAGE = 200
LOOKUP_PAGES = 5
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")
HISTORY_SCOPES = "channels:history (groups:history for a private channel)"


@dataclass(frozen=True, slots=True)
class Thread:
    """The first message of a key: where it is, and the counts its head shows."""

    channel: str
    ts: str
    kills: int
    victims: int
    head: str  # the first message as JSON [text, blocks], to show it again with new counts
    counted: str | None = None  # the delivery key of the last reply in the counts


class ThreadStore(Protocol):
    """Remembers the first message of each incident key, for threads and the running count."""

    def thread(self, receiver: str, key: str) -> Thread | None:
        """The first message of `key`, if any."""
        ...

    def save_thread(self, receiver: str, key: str, thread: Thread) -> None:
        """Record the first message, or its new counts."""
        ...

    def channel_id(self, receiver: str) -> str | None:
        """The channel ID Slack gave for an earlier message of `receiver`, if any."""
        ...


def slack_error(method: str, status: int, error: str | None, headers: Any) -> NotifyError:
    """The NotifyError for a Slack answer: its HTTP status, then its `error` string."""
    what = f"slack {method}"
    if status == 429 or error == "ratelimited":
        return NotifyError(
            f"{what}: rate limited",
            retryable=True,
            reason=FailureReason.RATE_LIMITED,
            retry_after=_retry_after(headers),
        )
    if error in AUTH_ERRORS:
        return NotifyError(
            f"{what}: Slack said {error}", retryable=False, reason=FailureReason.AUTH_ERROR
        )
    if error in RETRYABLE_ERRORS:
        return NotifyError(
            f"{what}: Slack said {error}", retryable=True, reason=FailureReason.SERVER_ERROR
        )
    by_status = status_error(status, what)
    if by_status is not None and status >= 300:
        return by_status
    return NotifyError(
        f"{what}: Slack said {error or 'not ok'}",
        retryable=False,
        reason=FailureReason.CLIENT_ERROR,
    )


def _metadata(inc: Incident, key: str) -> dict[str, Any]:
    """Slack message metadata naming the delivery, so a lookup after a crash can find it."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"delivery_key": key, "incident_key": inc.key, "pids": pids(inc)},
    }


def _carries(msg: Any, key: str) -> bool:
    """Whether a message from the history is ours, for delivery `key`."""
    if not isinstance(msg, dict) or not isinstance(msg.get("ts"), str):
        return False
    meta = msg.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return False
    payload = meta.get("event_payload")
    return isinstance(payload, dict) and payload.get("delivery_key") == key


def _retry_after(headers: Any) -> float | None:
    return parse_retry_after(header(headers or {}, "Retry-After"))


class SlackBotNotifier:
    """chat.postMessage; a repeat of a key goes into its first message's thread."""

    def __init__(
        self, name: str, token: str, channel: str, *, api_url: str, threads: ThreadStore
    ) -> None:
        from slack_sdk import WebClient

        self.name = name
        self.channel = channel
        self.threads = threads
        self.history = True  # the token may read history (until Slack says missing_scope)
        # one attempt per delivery: retries belong to the dispatcher
        self.client = WebClient(
            token=token, base_url=api_url.rstrip("/") + "/", timeout=10, retry_handlers=[]
        )

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Post the first message, or reply in its thread and update its counts."""
        await asyncio.to_thread(self._send, incident, delivery_key)

    async def recover(self, incident: Incident, delivery_key: str, since: float) -> bool:
        """Whether the message of `delivery_key` is in the channel (or thread) since `since`."""
        return await asyncio.to_thread(self._recover, incident, delivery_key, since)

    def _send(self, inc: Incident, key: str) -> None:
        first = self.threads.thread(self.name, inc.key)
        if first is None:
            self._post_head(inc, key)
            return
        text, bl = blocks(inc)
        self._call(
            "chat_postMessage",
            channel=first.channel,
            text=text,
            blocks=bl,
            thread_ts=first.ts,
            metadata=_metadata(inc, key),
        )
        self._count(first, inc, key)

    def _count(self, first: Thread, inc: Incident, key: str) -> None:
        """Add a reply to the head's counts, once per delivery key, and show them."""
        if first.counted == key:
            return
        f = inc.followup
        added_kills = f.count if f else 1
        pids = {p for p in (f.pids if f else ()) if p}
        added_victims = len(pids) if f else 1
        now = replace(
            first,
            kills=first.kills + added_kills,
            victims=first.victims + added_victims,
            counted=key,
        )
        self.threads.save_thread(self.name, inc.key, now)
        self._update_head(now, inc)

    def _head(self, inc: Incident) -> tuple[str, list[dict[str, Any]]]:
        return blocks(inc, counts_text(1, 1) if inc.kind == "oom_kill" else None)

    def _post_head(self, inc: Incident, key: str) -> None:
        text, bl = self._head(inc)
        data = self._call(
            "chat_postMessage",
            channel=self.channel,
            text=text,
            blocks=bl,
            metadata=_metadata(inc, key),
        )
        ts = data.get("ts")
        if not isinstance(ts, str):
            # posted, but Slack gave no ts to thread on: the next repeat starts a new message
            log.warning("slack %s: answer without ts; repeats will not be threaded", self.name)
            return
        channel = str(data.get("channel") or self.channel)
        head = Thread(channel, ts, 1, 1, json.dumps([text, bl]))
        self.threads.save_thread(self.name, inc.key, head)

    def _update_head(self, t: Thread, inc: Incident) -> None:
        """Show the running counts on the first message; best-effort (an update is idempotent)."""
        counts = (
            counts_text(t.kills, t.victims) if inc.kind == "oom_kill" else f"seen {t.kills} times"
        )
        text, bl = json.loads(t.head)
        for block in bl:
            if block.get("type") == "context":
                key_part = block["elements"][0]["text"].split(" · ")[0]
                block["elements"][0]["text"] = f"{key_part} · {counts}"
        try:
            self._call("chat_update", channel=t.channel, ts=t.ts, text=text, blocks=bl)
        except NotifyError as e:
            log.warning("slack %s: could not update the first message's counts: %s", self.name, e)

    def _recover(self, inc: Incident, key: str, since: float) -> bool:
        if not self.history:
            return False
        oldest = f"{since - LOOKBACK_S:.6f}"
        first = self.threads.thread(self.name, inc.key)
        try:
            if first is not None:
                found = self._find(
                    "conversations_replies", key, channel=first.channel, ts=first.ts, oldest=oldest
                )
                if found is not None and found["ts"] != first.ts:
                    self._count(first, inc, key)  # a reply; the head itself is no repeat
                return found is not None
            channel = self._channel_id()
            if channel is None:
                log.warning(
                    "slack %s: cannot look up the message a crash cut off: the channel's ID "
                    "is not known yet (configure it as an ID, like C0123ABCDEF); posting again",
                    self.name,
                )
                return False
            found = self._find("conversations_history", key, channel=channel, oldest=oldest)
        except NotifyError as e:
            if "missing_scope" not in str(e):
                raise
            self.history = False
            log.warning(
                "slack %s: the token lacks %s, so a message whose answer a crash cut off "
                "cannot be looked up and may be posted twice (at least once)",
                self.name,
                HISTORY_SCOPES,
            )
            return False
        if found is None:
            return False
        text, bl = self._head(inc)
        head = Thread(channel, str(found["ts"]), 1, 1, json.dumps([text, bl]))
        self.threads.save_thread(self.name, inc.key, head)
        return True

    def _channel_id(self) -> str | None:
        if CHANNEL_ID.fullmatch(self.channel):
            return self.channel
        return self.threads.channel_id(self.name)

    def _find(self, method: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
        """The message whose metadata carries `key`, in a bounded number of pages."""
        cursor = None
        for _ in range(LOOKUP_PAGES):
            data = self._call(
                method,
                include_all_metadata=True,
                inclusive=True,
                limit=LOOKUP_PAGE,
                cursor=cursor,
                **kwargs,
            )
            for msg in data.get("messages") or ():
                if _carries(msg, key):
                    return dict(msg)
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def caveat(self) -> str | None:
        """A line saying the token cannot read history (so crashes may repeat), or None."""
        return await asyncio.to_thread(self._probe_history)

    def _probe_history(self) -> str | None:
        channel = self._channel_id()
        if channel is None:
            return None
        try:
            self._call("conversations_history", channel=channel, limit=1)
        except NotifyError as e:
            if "missing_scope" in str(e):
                return (
                    f"the token lacks {HISTORY_SCOPES}: after a crash mid-post a message "
                    "may be posted twice"
                )
            raise
        return None

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            resp = getattr(self.client, method)(**kwargs)
        except SlackApiError as e:
            data = e.response.data if isinstance(e.response.data, dict) else {}
            raise slack_error(
                method, e.response.status_code, data.get("error"), e.response.headers
            ) from None
        except TimeoutError:
            raise NotifyError(
                f"slack {method}: timed out", retryable=True, reason=FailureReason.TIMEOUT
            ) from None
        except (SlackClientError, OSError) as e:
            raise NotifyError(
                f"slack {method}: {transport_words(e, self.client.base_url)}",
                retryable=True,
                reason=FailureReason.CONNECTION,
            ) from None
        return dict(resp.data) if isinstance(resp.data, dict) else {}

    async def aclose(self) -> None:
        """Nothing to release (urllib connections are per call)."""


@dataclass(frozen=True, kw_only=True)
class SlackConfig(Strict):
    """Slack by bot token (threads, updates) or by incoming webhook (no threads)."""

    token: str | None = None
    token_file: Path | None = None
    channel: str | None = None
    webhook_url: HttpUrl | None = None
    webhook_url_file: Path | None = None
    api_url: HttpUrl = "https://slack.com/api/"

    def __post_init__(self) -> None:
        has_token = bool(self.token or self.token_file)
        has_hook = bool(self.webhook_url or self.webhook_url_file)
        if has_token == has_hook:
            raise ValueError("give either token (with channel) or webhook_url")
        if has_token and not self.channel:
            raise ValueError("a bot token needs a channel")


class _MemoryThreads:
    """Thread memory for a one-off send (test-notify) that has no state file."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], Thread] = {}

    def thread(self, receiver: str, key: str) -> Thread | None:
        return self.seen.get((receiver, key))

    def save_thread(self, receiver: str, key: str, thread: Thread) -> None:
        self.seen[(receiver, key)] = thread

    def channel_id(self, receiver: str) -> str | None:
        return next((t.channel for (r, _), t in self.seen.items() if r == receiver), None)


def _build(name: str, c: SlackConfig, ctx: Context) -> SlackBotNotifier | SlackWebhookNotifier:
    if c.token or c.token_file:
        token = need(name, read_secret(c.token, c.token_file, "token"), "token")
        return SlackBotNotifier(
            name,
            token,
            need(name, c.channel, "channel"),
            api_url=c.api_url,
            threads=ctx.threads or _MemoryThreads(),
        )
    url = need(name, read_secret(c.webhook_url, c.webhook_url_file, "webhook_url"), "webhook_url")
    return SlackWebhookNotifier(name, url)


def _describe(c: SlackConfig) -> str:
    if c.token or c.token_file:
        token = mask(c.token) or f"from {c.token_file}"
        return f"(bot token {token}, channel {c.channel}, api {masked_url(c.api_url)})"
    return f"(incoming webhook {masked_url(c.webhook_url) if c.webhook_url else 'from file'})"


def _from_settings(s: Settings) -> SlackConfig | None:
    if s.slack_bot_token or s.slack_bot_token_file:
        return checked(
            SlackConfig,
            token=s.slack_bot_token,
            token_file=s.slack_bot_token_file,
            channel=s.slack_channel,
            api_url=s.slack_api_url,
        )
    if s.slack_webhook_url or s.slack_webhook_url_file:
        return checked(
            SlackConfig, webhook_url=s.slack_webhook_url, webhook_url_file=s.slack_webhook_url_file
        )
    return None


KIND = NotifierKind("slack", SlackConfig, _build, _describe, _from_settings, min_gap_s=1.0)
