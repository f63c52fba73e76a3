"""The table of notifier kinds: one line per kind, each defined beside its notifier.

A kind brings its config model (the value under its name in a receiver of the
receivers file), how to build the notifier, what `check-config` shows of it, the
receiver the environment can define, and its pacing. The receivers file, the
environment merge, `check-config` and the secret-leak test all iterate `KINDS`.
Backends (slack_sdk, lightkube, jinja2) are imported when a notifier is built.
"""

from __future__ import annotations

from oomwatch.notify.common import Context, NotifierKind

__all__ = ["KINDS", "Context", "NotifierKind"]


def _kinds() -> dict[str, NotifierKind]:
    from oomwatch.notify import (
        alertmanager,
        console,
        email,
        jsonl,
        k8s_events,
        opsgenie,
        pagerduty,
        slack,
        webhook,
    )

    table = (
        slack.KIND,
        webhook.KIND,
        pagerduty.KIND,
        opsgenie.KIND,
        alertmanager.KIND,
        email.KIND,
        k8s_events.KIND,
        jsonl.KIND,
        console.KIND,
    )
    return {k.name: k for k in table}


KINDS: dict[str, NotifierKind] = _kinds()
