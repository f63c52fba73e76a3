"""Slack's first message and its thread: one message an attempt, the first victim kept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.model import FollowUp, Incident
from oomwatch.notify.sample import sample_incident
from oomwatch.notify.slack import SlackBotNotifier, _MemoryThreads, blocks, headline
from oomwatch.sampling.sampler import PidCache
from oomwatch.testing import NODE
from tests.servers import Received, Recorder

TOKEN = "xoxb-1-SECRET"


@pytest.fixture
def slack() -> Iterator[Recorder]:
    """Answers like Slack's Web API; `chat.update` answers 429 the first time."""
    r = Recorder().start()
    updates = {"n": 0}

    def answer(req: Received) -> tuple[int, dict[str, str], bytes]:
        if req.path.endswith("/chat.update"):
            updates["n"] += 1
            if updates["n"] == 1:
                return 429, {"Retry-After": "1"}, b'{"ok": false, "error": "ratelimited"}'
            return 200, {}, b'{"ok": true}'
        return 200, {}, json.dumps({"ok": True, "channel": "C1", "ts": "1.1"}).encode()

    r.responder = answer
    yield r
    r.stop()


def repeat(inc: Incident, pids: tuple[int, ...]) -> Incident:
    """A follow-up of `inc` telling of kills of `pids`."""
    ids = tuple(f"kill:{p}" for p in pids)
    return replace(
        inc,
        id=f"followup:s:{ids[0]}",
        title=f"{len(pids)} more OOM kills of stress-ng-vm",
        followup=FollowUp(len(pids), pids, ids, 300.0),
    )


def test_failed_update_does_not_repeat_the_reply_and_the_head_keeps_the_first_victim(
    slack: Recorder,
) -> None:
    """A 429 on chat.update is logged; the reply is not posted again; counts stay right."""
    threads = _MemoryThreads()
    n = SlackBotNotifier("s", TOKEN, "#oom", api_url=f"{slack.url}/api/", threads=threads)
    first = sample_incident("node-1")

    async def go() -> None:
        await n.send(first, "a")
        await n.send(repeat(first, (11, 12)), "b")  # its update gets the 429: no error raised
        await n.send(repeat(first, (13,)), "c")

    asyncio.run(go())
    paths = [r.path.rsplit("/", 1)[1] for r in slack.received]
    assert paths == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
        "chat.postMessage",
        "chat.update",
    ]
    replies = [r.json() for r in slack.received if r.json().get("thread_ts")]
    assert len(replies) == 2
    t = threads.thread("s", first.key)
    assert t is not None
    assert (t.kills, t.victims) == (4, 4)
    head = slack.received[-1].json()
    text = json.dumps(head["blocks"])
    assert "stress-ng-vm (pid 183960)" in text  # the first victim, not "N more"
    assert "more OOM kills" not in text
    assert "4 OOM kills of 4 processes so far" in text


def test_a_log_gap_is_never_titled_a_memory_condition() -> None:
    """Each category and kind has its own head: a gap is a kernel log overrun."""
    b = IncidentBuilder(NODE, PidCache())
    gap = b.gap("kmsg", 12, "c")
    assert headline(gap) == "Kernel log overrun on node-1"
    assert "Memory condition" not in json.dumps(blocks(gap)[1])
    unseen = b.unseen(2, "/proc/vmstat oom_kill", None, 7)
    assert headline(unseen) == "OOM kills not in the log on node-1"


def test_header_names_the_victim_and_mrkdwn_cannot_format() -> None:
    """The header says what was killed where; `*bold*` in a name stays literal."""
    inc = sample_incident("node-3")
    assert headline(inc).startswith("OOM kill: stress-ng-vm in containerd container 25a38b5b8d55")
    assert headline(inc).endswith(" on node-3")
    from oomwatch.testing import with_victim

    _text, bl = blocks(with_victim(inc, "*x*_y_~z~`c`"))
    assert "*x*" not in json.dumps(bl[2])
    assert "*\u200bx*\u200b" in json.dumps(bl[2], ensure_ascii=False)


def test_an_answer_without_ts_is_sent_and_the_next_repeat_starts_anew(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`{"ok": true}` with no `ts` (a Slack-compatible server): sent, logged, no crash."""
    server = Recorder(responder=lambda _r: (200, {}, b'{"ok": true}')).start()
    threads = _MemoryThreads()
    n = SlackBotNotifier("s", TOKEN, "#oom", api_url=f"{server.url}/api/", threads=threads)
    first = sample_incident("node-1")

    async def go() -> None:
        await n.send(first, "a")
        await n.send(repeat(first, (11,)), "b")
        await n.aclose()

    try:
        asyncio.run(go())
    finally:
        server.stop()
    assert [r.path.rsplit("/", 1)[1] for r in server.received] == ["chat.postMessage"] * 2
    assert all(not r.json().get("thread_ts") for r in server.received)
    assert threads.thread("s", first.key) is None
    assert "answer without ts; repeats will not be threaded" in caplog.text
