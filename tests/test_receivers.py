"""The receivers file, routing, check-config and test-notify."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomwatch.delivery.routing import labels, route
from oomwatch.errors import UsageError
from oomwatch.model import Incident, PodRef
from oomwatch.notify.sample import sample_incident
from oomwatch.receivers import RouteConfig
from oomwatch.testing import make_incident, with_pod, with_victim
from oomwatch.validation import load_file, validate
from tests.servers import Recorder

CONFIG = """
receivers:
  - name: team-slack
    slack: {token_file: TOKEN_FILE, channel: "#oom", api_url: "URL/api/"}
  - name: pd
    pagerduty: {routing_key: R0UTINGKEY, url: "URL/v2/enqueue"}
  - name: archive
    jsonl: JSONL
route:
  receivers: [archive]
  routes:
    - matchers: ["kind=oom_kill", "comm=~stress.*"]
      receivers: [pd]
      continue: true
    - matchers: ["kind=oom_kill"]
      receivers: [team-slack]
"""


@pytest.fixture
def api() -> Iterator[Recorder]:
    """A server answering like Slack and PagerDuty."""
    r = Recorder().start()

    def answer(req: object) -> tuple[int, dict[str, str], bytes]:
        path = getattr(req, "path", "")
        if "chat.postMessage" in path:
            return 200, {}, b'{"ok": true, "channel": "C1", "ts": "1.2"}'
        if "conversations.history" in path:
            return 200, {}, b'{"ok": true, "messages": [], "has_more": false}'
        return 202, {}, b'{"status": "success"}'

    r.responder = answer
    yield r
    r.stop()


def write_config(tmp_path: Path, url: str) -> Path:
    """The sample config pointed at the local server."""
    token = tmp_path / "token"
    token.write_text("xoxb-SECRET-TOKEN\n")
    path = tmp_path / "oomwatch.yaml"
    path.write_text(
        CONFIG.replace("TOKEN_FILE", str(token))
        .replace("URL", url)
        .replace("JSONL", str(tmp_path / "out.jsonl"))
    )
    return path


def with_status(inc: Incident, *, comm: str, kind: str = "oom_kill") -> Incident:
    """The sample incident with another process name, or a condition of another kind."""
    if kind == "oom_kill":
        return with_victim(inc, comm)
    return make_incident(1, kind=kind, comm=comm)


def test_routing_tree(tmp_path: Path) -> None:
    """First match decides; `continue` goes on; no match falls back to the root."""
    tree = load_file(write_config(tmp_path, "http://127.0.0.1:1")).route
    assert tree is not None
    inc = sample_incident()
    assert labels(inc)["comm"] == "stress-ng-vm"
    assert labels(inc)["container"].startswith("25a38b5b")
    assert route(tree, inc) == ["pd", "team-slack"]
    assert route(tree, with_status(inc, comm="nginx")) == ["team-slack"]
    assert route(tree, with_status(inc, comm="x", kind="memory_low")) == ["archive"]
    assert route(RouteConfig(receivers=["a"]), inc) == ["a"]


def test_console_stays_on_beside_receivers_unless_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console prints every incident beside the file's routes; OOMWATCH_CONSOLE=off ends it."""
    from oomwatch.validation import effective, load_settings

    file = load_file(write_config(tmp_path, "http://127.0.0.1:1"))
    monkeypatch.setenv("OOMWATCH_WEBHOOK_URL", "http://127.0.0.1:1/hook")
    eff = effective(load_settings(), file)
    assert [r.name for r in eff.receivers] == ["team-slack", "pd", "archive", "webhook", "console"]
    assert eff.route is not None
    inc = sample_incident()
    assert route(eff.route, inc) == ["console", "pd", "team-slack"]
    assert route(eff.route, with_status(inc, comm="x", kind="memory_low")) == ["console", "archive"]
    monkeypatch.setenv("OOMWATCH_CONSOLE", "off")
    off = effective(load_settings(), file)
    assert "console" not in [r.name for r in off.receivers]
    assert off.route == file.route
    monkeypatch.delenv("OOMWATCH_CONSOLE")
    alone = effective(load_settings(), None)
    assert [r.name for r in alone.receivers] == ["webhook", "console"]
    assert alone.route is not None
    assert route(alone.route, inc) == ["webhook", "console"]


def test_library_loggers_stay_at_warning() -> None:
    """httpx logs each request's URL (a webhook's secret path) at INFO: never shown."""
    import io
    import logging

    from oomwatch.logsetup import configure

    out = io.StringIO()
    configure("text", out)
    logging.getLogger("httpx").info("HTTP Request: POST http://x/services/T0/B0/SECRET")
    logging.getLogger("oomwatch.delivery").info("sent to webhook in 3 ms: x")
    assert "SECRET" not in out.getvalue()
    assert "INFO oomwatch.delivery: sent to webhook in 3 ms: x" in out.getvalue()
    configure("json", out)
    logging.getLogger("oomwatch").warning("a %s", "b")
    last = json.loads(out.getvalue().splitlines()[-1])
    assert (last["level"], last["logger"], last["message"]) == ("WARNING", "oomwatch", "a b")
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("receivers: [", "not valid YAML"),
        ("receivers:\n  - name: x\n    slack: {channel: '#c'}\n", "give either token"),
        ("receivers:\n  - name: x\n    console: true\n    jsonl: /tmp/x\n", "exactly one kind"),
        ("route:\n  matchers: ['nope=1']\n", "LABEL one of"),
        ("route:\n  matchers: ['comm=~(']\n", "bad regex"),
        ("route:\n  receivers: [ghost]\n", "unknown receiver(s): ghost"),
        ("receivers:\n  - name: x\n    pagerduty: {routing_key: k, colour: red}\n", "colour"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, text: str, message: str) -> None:
    """Every mistake in the file: exit 2, one line naming the file and the problem."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert done.stderr.count("\n") == 1


def test_check_config_masks_secrets(tmp_path: Path, api: Recorder) -> None:
    """check-config shows receivers and routes, never a secret."""
    path = write_config(tmp_path, api.url)
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    assert "team-slack: slack (bot token from" in out
    assert "pd: pagerduty (routing key …" in out  # a short secret shows nothing of itself
    assert "- match kind=oom_kill comm=~stress.* -> pd continue" in out
    assert "R0UTINGKEY" not in out
    assert "SECRET-TOKEN" not in out


def test_test_notify_reports_each_receiver(tmp_path: Path, api: Recorder) -> None:
    """test-notify sends a sample to each receiver and prints the outcome of each."""
    path = write_config(tmp_path, api.url)
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "test-notify", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == ["team-slack", "pd", "archive"]
    assert all(re.fullmatch(r"[\w-]+: sent in \d+ ms", line) for line in lines), lines
    posted = {r.path for r in api.received}
    # test-notify also asks whether the token may read the channel's history
    assert posted == {"/api/chat.postMessage", "/api/conversations.history", "/v2/enqueue"}
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["incident"]["victim"]["comm"] == "stress-ng-vm"
    api.responder = None
    api.responses = [(400, {}, b'{"status": "invalid"}')]
    failed = subprocess.run(
        [sys.executable, "-m", "oomwatch", "test-notify", "pd", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stdout.startswith("pd: FAILED: pagerduty http://127.0.0.1:")
    assert "400" in failed.stdout


def test_missing_secret_file(tmp_path: Path) -> None:
    """A *_file that cannot be read is named in the error."""
    from oomwatch.receivers import make_notifier
    from oomwatch.validation import load_file as load

    path = tmp_path / "c.yaml"
    path.write_text("receivers:\n  - name: pd\n    pagerduty: {routing_key_file: /nonexistent}\n")
    (r,) = load(path).receivers
    with pytest.raises(UsageError, match="routing_key_file: cannot read /nonexistent"):
        make_notifier(r)


def test_routes_and_silences_match_kubernetes_labels() -> None:
    """namespace, pod, container and owner come from the pod attribution."""
    from oomwatch.delivery import silences
    from oomwatch.receivers import Matcher

    inc = sample_incident()
    pod = PodRef("shop", "api-7f9c", container="api", owner_kind="Deployment", owner_name="api")
    k8s = with_pod(inc, pod)
    lab = labels(k8s)
    assert (lab["namespace"], lab["pod"], lab["container"], lab["owner"]) == (
        "shop",
        "api-7f9c",
        "api",
        "Deployment/api",
    )
    tree = validate(
        RouteConfig,
        {
            "receivers": ["all"],
            "routes": [
                {"matchers": ["namespace=shop", "owner=~Deployment/.*"], "receivers": ["shop"]}
            ],
        },
    )
    assert route(tree, k8s) == ["shop"]
    assert route(tree, inc) == ["all"]
    s = silences.Silence("s1", (Matcher.parse("pod=api-7f9c"),), 2e9, 0.0)
    assert silences.silencing([s], lab, 1e9) == s


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"receivers: []\n# caf\xe9\n", "is not UTF-8: line 2, column 6: byte 0xe9"),
        (b"receivers:\n  - name: w\n    webhook: {url: 'http://h:70000/x'}\n", "port 70000"),
        (b"receivers:\n  - name: w\n    webhook: {url: 'htp://h/x'}\n", "scheme must be http"),
        (b"receivers:\n  - name: w\n    webhook: {url: 'hooks.example/x'}\n", "no scheme"),
    ],
)
def test_bad_config_text_is_one_line(tmp_path: Path, text: bytes, problem: str) -> None:
    """Bad bytes, ports and schemes are one ConfigError naming the file and the setting."""
    from oomwatch.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as e:
        load_file(path)
    assert problem in str(e.value)
    assert str(path) in str(e.value)
    assert "\n" not in str(e.value)
