"""Notifiers from receiver configs; each backend is imported only when configured."""

from __future__ import annotations

import socket

from oomwatch.config import ReceiverConfig, secret
from oomwatch.errors import UsageError
from oomwatch.notify import Notifier
from oomwatch.notify.slack import ThreadStore


class _MemoryThreads:
    """Thread memory for a one-off send (test-notify) that has no state file."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[str, str, int]] = {}

    def thread(self, receiver: str, key: str) -> tuple[str, str, int] | None:
        return self.seen.get((receiver, key))

    def save_thread(self, receiver: str, key: str, channel: str, ts: str, count: int) -> None:
        self.seen[(receiver, key)] = (channel, ts, count)


def make_notifier(
    r: ReceiverConfig,
    threads: ThreadStore | None = None,
    *,
    repeat_interval: float = 4 * 3600.0,
    node: str | None = None,
) -> Notifier:
    """The notifier for one receiver; a missing secret is a UsageError naming it."""
    name = r.name

    def need(value: str | None, what: str) -> str:
        if not value:
            raise UsageError(f"receiver {name!r}: {what} is empty")
        return value

    if r.slack is not None:
        c = r.slack
        if c.token or c.token_file:
            from oomwatch.notify.slack import SlackBotNotifier

            token = need(secret(c.token, c.token_file, "token"), "token")
            return SlackBotNotifier(
                name,
                token,
                need(c.channel, "channel"),
                api_url=c.api_url,
                threads=threads or _MemoryThreads(),
            )
        from oomwatch.notify.slack import SlackWebhookNotifier

        url = need(secret(c.webhook_url, c.webhook_url_file, "webhook_url"), "webhook_url")
        return SlackWebhookNotifier(name, url)
    if r.webhook is not None:
        from oomwatch.notify.webhook import WebhookNotifier

        w = r.webhook
        url = need(secret(w.url, w.url_file, "url"), "url")
        return WebhookNotifier(
            url,
            name=name,
            headers=w.headers,
            hmac_secret=secret(w.hmac_secret, w.hmac_secret_file, "hmac_secret"),
            template=w.template,
        )
    if r.pagerduty is not None:
        from oomwatch.notify.pagerduty import PagerDutyNotifier

        p = r.pagerduty
        key = need(secret(p.routing_key, p.routing_key_file, "routing_key"), "routing_key")
        return PagerDutyNotifier(name, key, p.url)
    if r.opsgenie is not None:
        from oomwatch.notify.opsgenie import OpsgenieNotifier

        o = r.opsgenie
        return OpsgenieNotifier(
            name, need(secret(o.api_key, o.api_key_file, "api_key"), "api_key"), o.url
        )
    if r.alertmanager is not None:
        from oomwatch.notify.alertmanager import AlertmanagerNotifier

        return AlertmanagerNotifier(
            name, r.alertmanager.url, repeat_interval=r.repeat_interval or repeat_interval
        )
    if r.email is not None:
        from oomwatch.notify.email import EmailNotifier

        e = r.email
        return EmailNotifier(
            name,
            host=e.smtp_host,
            port=e.smtp_port,
            security=e.security,
            username=e.username,
            password=secret(e.password, e.password_file, "password"),
            verify=e.verify,
            ca_file=e.ca_file,
            sender=e.sender,
            to=e.to,
        )
    if r.kubernetes_events is not None:
        from oomwatch.notify.k8s_events import KubernetesEventsNotifier

        return KubernetesEventsNotifier(
            name, node or socket.gethostname(), api_url=r.kubernetes_events.api_url
        )
    if r.jsonl is not None:
        from oomwatch.notify.jsonl import JsonlNotifier

        return JsonlNotifier(r.jsonl, name=name)
    from oomwatch.notify.console import ConsoleNotifier

    return ConsoleNotifier(name=name)
