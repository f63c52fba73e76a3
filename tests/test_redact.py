"""No secret in the log: configured values, URL credentials and token shapes are masked."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from oomwatch import redact as r
from oomwatch.logsetup import configure
from oomwatch.validation import load_file, load_settings

pytestmark = pytest.mark.fault


def test_urls_and_token_shapes_are_masked() -> None:
    """Userinfo, query values, Slack tokens and webhook paths, Authorization values."""
    text = (
        "POST https://bob:hunter2@am.example:9093/api/v2/alerts?token=abc123&x=1 failed; "
        "slack said invalid_auth for xoxb-1234-5678-abcdefgh at "
        "https://hooks.slack.com/services/T000/B000/SECRETTOKEN123; "
        "echo: Authorization: Bearer eyJhbGciOi.payload and GenieKey 0a1b2c3d-key"
    )
    out = r.redact(text, secrets=())
    for secret in (
        "hunter2",
        "bob",
        "abc123",
        "xoxb-1234",
        "SECRETTOKEN123",
        "eyJhbGciOi",
        "0a1b2c3d",
    ):
        assert secret not in out, secret
    assert "https://<redacted>@am.example:9093/api/v2/alerts?token=<redacted>&x=<redacted>" in out
    assert "slack said invalid_auth" in out


def test_secrets_are_found_in_settings_files_and_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of secret: values, *_FILE contents, URL passwords, the file's receivers."""
    (tmp_path / "slack").write_text("xoxb-from-a-file\n")
    monkeypatch.setenv("OOMWATCH_SLACK_BOT_TOKEN_FILE", str(tmp_path / "slack"))
    monkeypatch.setenv("OOMWATCH_WEBHOOK_URL", "http://127.0.0.1:9/hook/abcdef")
    monkeypatch.setenv("OOMWATCH_PAGERDUTY_ROUTING_KEY", "R0123456789abcdef")
    monkeypatch.setenv("OOMWATCH_SMTP_PASSWORD", "smtp-pass-1")
    monkeypatch.setenv("OOMWATCH_ALERTMANAGER_URL", "http://am:s3cr3t-pw@127.0.0.1:9093")
    found = set(r.secrets_of(load_settings()))
    assert {
        "xoxb-from-a-file",
        "http://127.0.0.1:9/hook/abcdef",
        "R0123456789abcdef",
        "smtp-pass-1",
        "s3cr3t-pw",
    } <= found
    assert "https://slack.com/api/" not in found, "a URL with no credential is not a secret"
    config = tmp_path / "c.yaml"
    config.write_text(
        "receivers:\n"
        "  - name: og\n    opsgenie: {api_key: og-key-123456}\n"
        "  - name: hook\n    webhook: {url: 'http://127.0.0.1:9/x', hmac_secret: hmac-secret-1}\n"
    )
    found = set(r.secrets_of(load_file(config)))
    assert {"og-key-123456", "http://127.0.0.1:9/x", "hmac-secret-1"} <= found


def test_every_log_line_passes_the_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered secret in a message's arguments or in a traceback never reaches the log."""
    monkeypatch.setattr(r, "_known", set())
    r.remember(["R0123456789abcdef", "ab"])  # too short to mask: never blanks words
    for fmt in ("text", "json"):
        out = io.StringIO()
        configure(fmt, out)
        log = logging.getLogger("oomwatch.delivery")
        log.warning("delivery failed: HTTP 400 from server: %s", "bad key R0123456789abcdef")
        try:
            raise ValueError("echoed R0123456789abcdef")
        except ValueError:
            log.exception("bug in a notifier")
        logging.getLogger("slack_sdk").error("token xoxb-9999-abcdefghij refused")
        log.info("a short value stays: about ab")
        text = out.getvalue()
        assert "R0123456789abcdef" not in text
        assert "xoxb-9999" not in text
        assert "bad key <redacted>" in text
        assert "ValueError: echoed <redacted>" in text.replace("\\n", "\n")
        assert "a short value stays: about ab" in text
        if fmt == "json":
            assert all(json.loads(line) for line in text.splitlines() if line.startswith("{"))
    logging.getLogger().handlers.clear()
