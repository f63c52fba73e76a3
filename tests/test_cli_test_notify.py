"""`oomwatch test-notify` says in words what each receiver did."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from oomwatch.cli import main
from tests.agentproc import free_port
from tests.servers import Received, Recorder, SlackLike


def _slack(r: Received) -> tuple[int, dict[str, str], bytes]:
    if "chat.postMessage" in r.path:
        return 200, {}, json.dumps({"ok": False, "error": "channel_not_found"}).encode()
    return 200, {}, b'{"ok": true}'


def test_each_receiver_said_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused, an HTTP error with its reason, a Slack error, and a success with its time."""
    up = Recorder().start()
    missing = Recorder(responses=[(404, {}, b"<html><body><h1>Not here</h1></body></html>")])
    missing.start()
    slack = Recorder(responder=_slack).start()
    down = free_port()  # nothing listens there
    config = tmp_path / "receivers.yaml"
    config.write_text(
        "receivers:\n"
        f"  - name: up\n    webhook: {{url: '{up.url}/hook'}}\n"
        f"  - name: gone\n    webhook: {{url: 'http://127.0.0.1:{down}/hook'}}\n"
        f"  - name: missing\n    webhook: {{url: '{missing.url}/services/T0/B0/SECRET'}}\n"
        "  - name: chat\n"
        f"    slack: {{token: xoxb-test, channel: '#oom', api_url: '{slack.url}/api/'}}\n"
    )
    try:
        code = main(["test-notify", "--config", str(config)])
    finally:
        for s in (up, missing, slack):
            s.stop()
    out = capsys.readouterr().out.splitlines()
    assert code == 1  # a receiver failed
    assert re.fullmatch(r"up: sent in \d+ ms", out[0])
    assert out[1] == (
        f"gone: FAILED: webhook http://127.0.0.1:{down}/<redacted>: "
        f"connection refused by 127.0.0.1:{down}"
    )
    assert out[2].startswith(f"missing: FAILED: webhook {missing.url}/<redacted>: ")
    assert out[2].endswith("HTTP 404 Not Found: Not here")
    assert out[3] == "chat: FAILED: slack chat_postMessage: Slack said channel_not_found"
    assert "SECRET" not in "\n".join(out)


@pytest.mark.parametrize("scopes", [{"chat:write"}, {"chat:write", "channels:history"}])
def test_slack_without_the_history_scope_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scopes: set[str]
) -> None:
    """Sent, then one note when the token cannot read the channel's history; none when it can."""
    api = SlackLike(scopes=frozenset(scopes))
    slack = Recorder(responder=api).start()
    config = tmp_path / "receivers.yaml"
    config.write_text(
        "receivers:\n  - name: chat\n"
        f"    slack: {{token: xoxb-test, channel: '#oom', api_url: '{slack.url}/api/'}}\n"
    )
    try:
        code = main(["test-notify", "--config", str(config)])
    finally:
        slack.stop()
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert re.fullmatch(r"chat: sent in \d+ ms", out[0])
    if "channels:history" in scopes:
        assert out[1:] == []
    else:
        assert out[1:] == [
            "chat: note: the token lacks channels:history (groups:history for a private "
            "channel): after a crash mid-post a message may be posted twice"
        ]
    assert api.history_calls == 1
