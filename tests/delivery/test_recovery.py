"""A crash between Slack's answer and its record: looked up by its metadata, never posted twice."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomwatch.delivery.dispatcher import Dispatcher, Policy
from oomwatch.delivery.grouping import followup
from oomwatch.metrics import Metrics
from oomwatch.notify.slack import SlackBotNotifier
from oomwatch.store import Store
from oomwatch.testing import RecordingNotifier, make_incident
from tests.servers import Recorder, SlackLike

TOKEN = "xoxb-1-SECRET"


@pytest.fixture
def slack() -> Iterator[tuple[SlackLike, Recorder]]:
    """A stateful Slack Web API on 127.0.0.1 whose token can read the channel's history."""
    api = SlackLike()
    server = Recorder(responder=api).start()
    yield api, server
    server.stop()


def notifier(server: Recorder, store: Store, channel: str = SlackLike.CHANNEL) -> SlackBotNotifier:
    """A new notifier, as a restarted agent makes it."""
    return SlackBotNotifier("s", TOKEN, channel, api_url=f"{server.url}/api/", threads=store)


def dispatcher(store: Store, n: SlackBotNotifier) -> Dispatcher:
    """A new dispatcher, as a restarted agent makes it (folds repeats for 60 s)."""
    return Dispatcher(store, {"s": n}, Metrics(), policies={"s": Policy(group_interval=60.0)})


def pending(store: Store) -> list[tuple[int, float | None]]:
    """(id, inflight_at) of the pending deliveries."""
    return store.db.execute(
        "SELECT id, inflight_at FROM outbox WHERE state = 'pending' ORDER BY id"
    ).fetchall()


def crash_after_post(store: Store, server: Recorder, *, answered: bool = True) -> None:
    """The first agent: marks the pending delivery in flight, posts it, dies before the record.

    `answered=False`: it died before reading Slack's answer (no thread saved).
    """
    ((dl_id, _),) = pending(store)
    store.inflight([dl_id], time.time())
    (dl,) = store.due(time.time(), "s")
    had = store.thread("s", dl.incident.key)
    asyncio.run(notifier(server, store).send(dl.incident, f"{dl.incident.id}/s"))
    if not answered and had is None:
        store.db.execute("DELETE FROM threads WHERE key = ?", (dl.incident.key,))


def test_crash_after_the_post_does_not_repeat_the_first_message(
    tmp_path: Path, slack: tuple[SlackLike, Recorder]
) -> None:
    """Found in conversations.history by its delivery key: marked sent, thread kept, no repost."""
    api, server = slack
    store = Store(tmp_path / "db")
    inc = make_incident(1, key="a" * 20)
    store.record([inc], ["s"])
    crash_after_post(store, server, answered=False)
    assert api.keys() == ["kill:1/s"]

    d = dispatcher(store, notifier(server, store))
    asyncio.run(d.deliver_due())
    assert api.keys() == ["kill:1/s"]  # looked up, not posted again
    assert api.history_calls == 1
    assert pending(store) == []
    assert d.metrics.deliveries.labels("s", "recovered")._value.get() == 1
    head = store.thread("s", inc.key)
    assert head is not None
    assert head.ts == api.posts()[0]["ts"]  # a repeat threads on the message that was found

    # the next kill of the key, after the group interval, is a reply in that thread
    store.record([make_incident(2, key="a" * 20)], ["s"])
    store.db.execute("UPDATE groups SET last_sent = last_sent - 120")
    asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())
    reply = api.posts()[-1]
    assert reply["thread_ts"] == head.ts


def test_crash_before_the_post_posts_once(
    tmp_path: Path, slack: tuple[SlackLike, Recorder]
) -> None:
    """Marked in flight but never posted: the lookup finds nothing, so it is posted, once."""
    api, server = slack
    store = Store(tmp_path / "db")
    store.record([make_incident(1, key="a" * 20)], ["s"])
    ((dl_id, _),) = pending(store)
    store.inflight([dl_id], time.time())
    asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())
    assert api.keys() == ["kill:1/s"]
    assert api.history_calls == 1
    assert pending(store) == []


def test_crash_after_a_thread_reply_counts_it_once(
    tmp_path: Path, slack: tuple[SlackLike, Recorder]
) -> None:
    """A reply found by conversations.replies is not posted again and counted once in the head."""
    api, server = slack
    store = Store(tmp_path / "db")
    first = make_incident(1, key="a" * 20)
    store.record([first], ["s"])
    asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())
    store.record([make_incident(2, key="a" * 20)], ["s"])
    # the group interval has passed for this key: the second kill goes out as a reply
    store.db.execute("UPDATE groups SET last_sent = last_sent - 120")
    crash_after_post(store, server)
    assert api.keys() == ["kill:1/s", "kill:2/s"]
    head = store.thread("s", first.key)
    assert head is not None
    assert head.counted == "kill:2/s"

    asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())
    assert api.keys() == ["kill:1/s", "kill:2/s"]
    assert pending(store) == []
    after = store.thread("s", first.key)
    assert after is not None
    assert (after.kills, after.victims) == (2, 2)


def test_crash_during_a_followup_sends_only_the_repeats_it_did_not_carry(
    tmp_path: Path, slack: tuple[SlackLike, Recorder]
) -> None:
    """The follow-up that arrived is found; repeats folded after it go out in the next one."""
    api, server = slack
    store = Store(tmp_path / "db")
    store.record([make_incident(1, key="a" * 20)], ["s"])
    n = notifier(server, store)
    d = dispatcher(store, n)
    asyncio.run(d.deliver_due())
    store.record([make_incident(p, key="a" * 20) for p in (2, 3)], ["s"])
    asyncio.run(d.deliver_due())  # both folded
    folded = store.folded("s", "a" * 20)
    assert folded is not None
    assert len(folded.ids) == 2
    # the first agent sends the follow-up of 2 and 3 and dies before recording it
    store.inflight(folded.ids, time.time())
    sent = followup(folded.last, folded.pids, folded.incident_ids, "s", 60.0, key="a" * 20)
    asyncio.run(n.send(sent, f"{sent.id}/s"))
    store.record([make_incident(4, key="a" * 20)], ["s"])
    asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())  # folds 4
    store.db.execute("UPDATE groups SET followup_at = 0")

    asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())
    assert api.keys().count(f"{sent.id}/s") == 1
    states = dict(store.db.execute("SELECT incident_id, state FROM outbox").fetchall())
    assert states == {
        "kill:1": "sent",
        "kill:2": "followed",
        "kill:3": "followed",
        "kill:4": "folded",
    }
    store.db.execute("UPDATE groups SET followup_at = 0")
    asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())
    last = api.posts()[-1]
    assert last["metadata"]["event_payload"]["delivery_key"] == "followup:s:kill:4/s"
    assert "1 more OOM kill" in last["text"]


def test_a_token_without_the_history_scope_falls_back_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """missing_scope: one warning naming the scope, then posted again (at least once)."""
    api = SlackLike(scopes=frozenset({"chat:write"}))
    server = Recorder(responder=api).start()
    try:
        store = Store(tmp_path / "db")
        store.record([make_incident(p, key=f"{p:020d}") for p in (1, 2)], ["s"])
        for dl_id, _ in pending(store):
            store.inflight([dl_id], time.time())
        (dl, _) = store.due(time.time(), "s")
        n = notifier(server, store)
        asyncio.run(n.send(dl.incident, f"{dl.incident.id}/s"))  # crash after this post
        with caplog.at_level(logging.WARNING, "oomwatch.notify.slack"):
            asyncio.run(dispatcher(store, notifier(server, store)).deliver_due())
    finally:
        server.stop()
    assert api.keys() == ["kill:1/s", "kill:1/s", "kill:2/s"]  # the repeat the scope allows
    assert api.history_calls == 1  # said once, then not asked again
    warnings = [r.getMessage() for r in caplog.records if "history" in r.getMessage()]
    assert len(warnings) == 1
    assert "channels:history" in warnings[0]
    assert "posted twice" in warnings[0]
    assert TOKEN not in caplog.text


def test_a_channel_given_by_name_is_looked_up_by_the_id_slack_gave(
    tmp_path: Path, slack: tuple[SlackLike, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    """`#oom` cannot be read as history: the ID from an earlier answer is used; none, it says so."""
    api, server = slack
    store = Store(tmp_path / "db")
    store.record([make_incident(1, key="a" * 20)], ["s"])
    crash_after_post(store, server, answered=False)
    with caplog.at_level(logging.WARNING, "oomwatch.notify.slack"):
        asyncio.run(dispatcher(store, notifier(server, store, "#oom")).deliver_due())
    assert "channel's ID is not known yet" in caplog.text
    assert api.keys() == ["kill:1/s", "kill:1/s"]  # nothing known to look in: at least once

    store.record([make_incident(2, key="b" * 20)], ["s"])
    crash_after_post(store, server, answered=False)
    asyncio.run(dispatcher(store, notifier(server, store, "#oom")).deliver_due())
    assert api.keys() == ["kill:1/s", "kill:1/s", "kill:2/s"]  # found by the ID Slack gave


def test_crash_after_the_answer_finds_the_head_it_saved(
    tmp_path: Path, slack: tuple[SlackLike, Recorder]
) -> None:
    """Answered and saved as the thread's head, then killed: conversations.replies finds it."""
    api, server = slack
    store = Store(tmp_path / "db")
    store.record([make_incident(1, key="a" * 20)], ["s"])
    crash_after_post(store, server, answered=True)
    asyncio.run(dispatcher(store, notifier(server, store, "#oom")).deliver_due())
    assert api.keys() == ["kill:1/s"]
    assert pending(store) == []
    head = store.thread("s", "a" * 20)
    assert head is not None
    assert (head.kills, head.victims) == (1, 1)  # the head is not counted as its own reply


def test_a_cut_followup_to_a_webhook_goes_again_as_it_was(tmp_path: Path) -> None:
    """No lookup: the same key and the same kills; kills folded later go in the next one."""
    store = Store(tmp_path / "db")
    hook = RecordingNotifier("w")
    d = Dispatcher(store, {"w": hook}, Metrics(), policies={"w": Policy(group_interval=60.0)})
    store.record([make_incident(1, key="a" * 20)], ["w"])
    asyncio.run(d.deliver_due())
    store.record([make_incident(p, key="a" * 20) for p in (2, 3)], ["w"])
    asyncio.run(d.deliver_due())
    folded = store.folded("w", "a" * 20)
    assert folded is not None
    store.inflight(folded.ids, time.time())  # the follow-up of 2 and 3 was being sent: crash
    store.record([make_incident(4, key="a" * 20)], ["w"])
    d = Dispatcher(store, {"w": hook}, Metrics(), policies={"w": Policy(group_interval=60.0)})
    asyncio.run(d.deliver_due())  # 4 is folded
    store.db.execute("UPDATE groups SET followup_at = 0")
    asyncio.run(d.deliver_due())
    again = hook.sent[-1]
    assert hook.keys[-1] == "followup:w:kill:2/w"
    assert again.followup is not None
    assert again.followup.incidents == ("kill:2", "kill:3")  # not 4: it was not in that one
    store.db.execute("UPDATE groups SET followup_at = 0")
    asyncio.run(d.deliver_due())
    assert hook.keys[-1] == "followup:w:kill:4/w"
    states = dict(store.db.execute("SELECT incident_id, state FROM outbox").fetchall())
    assert set(states.values()) == {"sent", "followed"}


def test_a_cut_delivery_is_never_folded_into_a_later_followup(tmp_path: Path) -> None:
    """Chosen to be sent before the crash: after it, sent under its own key, not folded."""
    store = Store(tmp_path / "db")
    hook = RecordingNotifier("w")
    d = Dispatcher(store, {"w": hook}, Metrics(), policies={"w": Policy(group_interval=60.0)})
    store.record([make_incident(1, key="a" * 20)], ["w"])
    asyncio.run(d.deliver_due())
    store.record([make_incident(2, key="a" * 20)], ["w"])
    ((dl_id, _),) = pending(store)
    store.inflight([dl_id], time.time())  # the agent had chosen to send 2 when it died
    asyncio.run(d.deliver_due())
    assert hook.keys == ["kill:1/w", "kill:2/w"]
