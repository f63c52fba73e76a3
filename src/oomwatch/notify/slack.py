"""Slack: a bot token (chat.postMessage, threads for repeats, chat.update) or an incoming webhook.

Limits (https://docs.slack.dev/reference/block-kit/blocks): 50 blocks a message,
3,000 characters a section text, 10 fields of 2,000 characters, 150 for a header;
the top-level `text` is kept under 3,000 here. Untrusted text is escaped for mrkdwn.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from oomwatch.incidents import Incident
from oomwatch.notify import NotifyError, redact_url
from oomwatch.notify.render import details, facts, slack_escape, truncate

MAX_TEXT = 3000
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_BLOCKS = 50


class ThreadStore(Protocol):
    """Remembers the first message of each incident key, for threads and the running count."""

    def thread(self, receiver: str, key: str) -> tuple[str, str, int] | None:
        """(channel, ts, count) of the first message of `key`, if any."""
        ...

    def save_thread(self, receiver: str, key: str, channel: str, ts: str, count: int) -> None:
        """Record the first message, or its new count."""
        ...


def blocks(inc: Incident, repeat: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, Block Kit blocks) for an incident."""
    head = {
        "resolved": "Resolved",
        "firing": "OOM kill" if inc.kind == "oom_kill" else "Memory condition",
    }.get(inc.status, inc.status)
    host = str(inc.body.get("host") or "")
    title = slack_escape(inc.title)
    text = truncate(f"{head} on {slack_escape(host)}: {title}", MAX_TEXT)
    out: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(f"{head} on {host}", MAX_HEADER)},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": truncate(title, MAX_SECTION)}},
    ]
    fields = [
        {"type": "mrkdwn", "text": truncate(f"*{k}*\n{slack_escape(v)}", MAX_FIELD)}
        for k, v in facts(inc)
    ][:MAX_FIELDS]
    if fields:
        out.append({"type": "section", "fields": fields})
    why, advice = details(inc)
    if why:
        out.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(slack_escape(why), MAX_SECTION)},
            }
        )
    if advice:
        todo = "\n".join(f"• {slack_escape(a)}" for a in advice)
        out.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(f"*What to do*\n{todo}", MAX_SECTION)},
            }
        )
    context = f"key `{inc.key}`"
    if repeat:
        context = f"seen {repeat} times · " + context
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return text, out[:MAX_BLOCKS]


class SlackBotNotifier:
    """chat.postMessage; a repeat of a key goes into its first message's thread."""

    def __init__(
        self, name: str, token: str, channel: str, *, api_url: str, threads: ThreadStore
    ) -> None:
        from slack_sdk import WebClient

        self.name = name
        self.channel = channel
        self.threads = threads
        # one attempt per delivery: retries belong to the dispatcher
        self.client = WebClient(
            token=token, base_url=api_url.rstrip("/") + "/", timeout=10, retry_handlers=[]
        )

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Post, or reply in the thread and update the first message's count."""
        await asyncio.to_thread(self._send, incident)

    def _send(self, inc: Incident) -> None:
        first = self.threads.thread(self.name, inc.key)
        if first is None:
            text, bl = blocks(inc)
            data = self._call("chat_postMessage", channel=self.channel, text=text, blocks=bl)
            self.threads.save_thread(
                self.name, inc.key, str(data.get("channel") or self.channel), str(data["ts"]), 1
            )
            return
        channel, ts, count = first
        text, bl = blocks(inc)
        self._call("chat_postMessage", channel=channel, text=text, blocks=bl, thread_ts=ts)
        self.threads.save_thread(self.name, inc.key, channel, ts, count + 1)
        head_text, head_blocks = blocks(inc, repeat=count + 1)
        self._call("chat_update", channel=channel, ts=ts, text=head_text, blocks=head_blocks)

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError, SlackRequestError

        try:
            resp = getattr(self.client, method)(**kwargs)
        except SlackApiError as e:
            status = e.response.status_code
            error = (
                (e.response.data or {}).get("error") if isinstance(e.response.data, dict) else None
            )
            if status == 429 or error == "ratelimited":
                after = e.response.headers.get("Retry-After") or e.response.headers.get(
                    "retry-after"
                )
                raise NotifyError(
                    f"slack {method}: rate limited",
                    retryable=True,
                    reason="rate_limited",
                    retry_after=float(after) if after else None,
                ) from None
            retry = status >= 500 or error in (
                "internal_error",
                "fatal_error",
                "service_unavailable",
                "request_timeout",
            )
            raise NotifyError(
                f"slack {method}: {status} {error}",
                retryable=retry,
                reason="server_error" if retry else "client_error",
            ) from None
        except (SlackRequestError, OSError) as e:
            raise NotifyError(
                f"slack {method}: {type(e).__name__}", retryable=True, reason="connection"
            ) from None
        return dict(resp.data) if isinstance(resp.data, dict) else {}

    async def aclose(self) -> None:
        """Nothing to release (urllib connections are per call)."""


class SlackWebhookNotifier:
    """An incoming webhook: one message per delivery, no threads."""

    def __init__(self, name: str, url: str) -> None:
        from slack_sdk.webhook import WebhookClient

        self.name = name
        self.url = url
        self.client = WebhookClient(url, timeout=10, retry_handlers=[])

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """POST the message."""
        await asyncio.to_thread(self._send, incident)

    def _send(self, inc: Incident) -> None:
        text, bl = blocks(inc)
        try:
            resp = self.client.send(text=text, blocks=bl)
        except OSError as e:
            raise NotifyError(
                f"slack webhook {redact_url(self.url)}: {type(e).__name__}",
                retryable=True,
                reason="connection",
            ) from None
        code = resp.status_code
        if 200 <= code < 300:
            return
        what = f"slack webhook {redact_url(self.url)}: {code} {str(resp.body)[:100]}"
        if code == 429:
            after = resp.headers.get("Retry-After") or resp.headers.get("retry-after")
            raise NotifyError(
                what,
                retryable=True,
                reason="rate_limited",
                retry_after=float(after[0] if isinstance(after, list) else after)
                if after
                else None,
            )
        raise NotifyError(
            what, retryable=code >= 500, reason="server_error" if code >= 500 else "client_error"
        )

    async def aclose(self) -> None:
        """Nothing to release."""
