"""Slack's Block Kit message for an incident: header, facts, why, what to do, context.

Limits (https://docs.slack.dev/reference/block-kit/blocks): 50 blocks a message,
3,000 characters a section text, 10 fields of 2,000 characters, 150 for a header;
the top-level `text` is kept under 3,000 here. Untrusted text is escaped for mrkdwn.
"""

from __future__ import annotations

from typing import Any

from oomwatch.model import Incident
from oomwatch.notify.facts import details, facts, truncate
from oomwatch.render.escape import slack_escape

MAX_TEXT = 3000
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_BLOCKS = 50


def headline(inc: Incident) -> str:
    """`OOM kill: api in shop/api-7f9c… on node-3` (plain text, for the header)."""
    prefix = "[drill] " if inc.drill else ""
    if inc.status == "resolved":
        return f"{prefix}Resolved on {inc.host}: {inc.title}"
    k = inc.kill
    if k is not None:
        where = k.pod.where if k.pod else k.where
        place = "" if where == "the host" else f" in {where}"
        return f"{prefix}OOM kill: {k.kill.victim.comm}{place} on {inc.host}"
    label = {"condition": "Memory condition"}.get(inc.category) or _event_label(inc.kind)
    return f"{prefix}{label} on {inc.host}"


def _event_label(kind: str) -> str:
    return {
        "log_gap": "Kernel log overrun",
        "unseen_kills": "OOM kills not in the log",
        "kills_before_start": "OOM kills before oomwatch started",
    }.get(kind, "oomwatch")


def blocks(inc: Incident, counts: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, Block Kit blocks) for an incident; `counts` goes in the context line."""
    from slack_sdk.models.blocks import (
        ContextBlock,
        HeaderBlock,
        MarkdownTextObject,
        SectionBlock,
    )

    head = headline(inc)
    title = slack_escape(inc.title)
    text = truncate(f"{slack_escape(head)}: {title}", MAX_TEXT)
    # plain text shows `<` and `>` as they are; look-alikes keep a name from reading as markup
    plain = head.replace("<", "\u2039").replace(">", "\u203a").replace("&", "+")
    out: list[Any] = [
        HeaderBlock(text=truncate(plain, MAX_HEADER)),
        SectionBlock(text=MarkdownTextObject(text=truncate(title, MAX_SECTION))),
    ]
    fields = [
        MarkdownTextObject(text=truncate(f"*{k}*\n{slack_escape(v)}", MAX_FIELD))
        for k, v in facts(inc)
    ][:MAX_FIELDS]
    if fields:
        out.append(SectionBlock(fields=fields))
    why, advice = details(inc)
    if why:
        out.append(
            SectionBlock(text=MarkdownTextObject(text=truncate(slack_escape(why), MAX_SECTION)))
        )
    if advice:
        todo = "\n".join(f"• {slack_escape(a)}" for a in advice)
        out.append(
            SectionBlock(
                text=MarkdownTextObject(text=truncate(f"*What to do*\n{todo}", MAX_SECTION))
            )
        )
    context = f"key `{inc.key}`" + (f" · {counts}" if counts else "")
    out.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    return text, [b.to_dict() for b in out[:MAX_BLOCKS]]


def counts_text(kills: int, victims: int) -> str:
    """`3 OOM kills of 3 processes so far`."""
    return (
        f"{kills} OOM kill{'s' if kills != 1 else ''} of {victims} "
        f"process{'es' if victims != 1 else ''} so far"
    )
