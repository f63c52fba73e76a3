"""Email against a real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS, login."""

from __future__ import annotations

import asyncio
import re
import ssl
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from oomwatch.errors import NotifyError
from oomwatch.model import Incident
from oomwatch.notify.email import EmailNotifier
from oomwatch.notify.sample import sample_incident
from oomwatch.testing import with_victim
from tests.agentproc import free_port


class Inbox:
    """Keeps what the server accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, _server: Any, _session: Session, envelope: Envelope
    ) -> str:
        """Keep the message."""
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((envelope, message_from_bytes(data)))
        return "250 OK"


def check_login(
    _server: Any, _session: Session, _envelope: Envelope, _mechanism: str, auth_data: Any
) -> AuthResult:
    """Accepts oomwatch / right-password only."""
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"oomwatch",
        b"right-password",
    )
    return AuthResult(success=ok)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    """A test CA and its certificate file."""
    authority = trustme.CA()
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


def smtp_server(
    inbox: Inbox, *, tls: ssl.SSLContext | None = None, auth: bool = False
) -> Controller:
    """aiosmtpd on a free port of 127.0.0.1, with STARTTLS and login when asked."""
    kwargs: dict[str, Any] = {}
    if tls is not None:
        kwargs.update(tls_context=tls, require_starttls=True)
    if auth:
        kwargs.update(authenticator=check_login, auth_require_tls=tls is not None)
    c = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
    c.start()
    return c


def send(n: EmailNotifier, inc: Incident) -> None:
    """One attempt."""
    asyncio.run(n.send(inc, "x"))


def notifier(port: int, **kw: Any) -> EmailNotifier:
    """An email notifier to the test server."""
    base: dict[str, Any] = dict(
        host="127.0.0.1",
        port=port,
        security="none",
        username=None,
        password=None,
        verify=True,
        ca_file=None,
        sender="oomwatch@node-1",
        to=["oncall@example.test"],
    )
    base.update(kw)
    return EmailNotifier("mail", **base)


def hostile() -> Incident:
    """A kill whose process name tries to inject a header."""
    return with_victim(sample_incident("node-1"), "x\r\nBcc: victim@evil.test\r\n<b>")


def test_plain_multipart_and_no_header_injection() -> None:
    """Text and HTML parts; a hostile name cannot add a header and is HTML-escaped."""
    inbox = Inbox()
    c = smtp_server(inbox)
    try:
        send(notifier(c.port), hostile())
    finally:
        c.stop()
    (envelope, msg) = inbox.messages[0]
    assert envelope.rcpt_tos == ["oncall@example.test"]
    assert msg["Bcc"] is None
    subject = str(msg["Subject"])
    assert re.search(r"\n(?![ \t])", subject) is None  # only folding, never a new header
    assert " ".join(subject.split()).startswith(
        "[oomwatch] OOM kill on node-1: x Bcc: victim@evil.test"
    )
    assert msg["X-Oomwatch-Key"]
    kinds = [p.get_content_type() for p in msg.walk()]
    assert "text/plain" in kinds
    assert "text/html" in kinds
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    text = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "&lt;b&gt;" in text
    assert "<b>" not in text


def test_starttls_with_login(ca: tuple[trustme.CA, Path]) -> None:
    """STARTTLS against a self-signed certificate (trusted via ca_file), then login."""
    authority, ca_path = ca
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_ctx)
    inbox = Inbox()
    c = smtp_server(inbox, tls=server_ctx, auth=True)
    try:
        send(
            notifier(
                c.port,
                security="starttls",
                username="oomwatch",
                password="right-password",
                ca_file=ca_path,
            ),
            sample_incident(),
        )
        assert len(inbox.messages) == 1
        with pytest.raises(NotifyError) as bad_login:
            send(
                notifier(
                    c.port,
                    security="starttls",
                    username="oomwatch",
                    password="wrong",
                    ca_file=ca_path,
                    timeout_s=2.0,  # the server waits before it refuses; no need for 15 s
                ),
                sample_incident(),
            )
        assert bad_login.value.retryable is False
        assert bad_login.value.reason == "auth_error"
        assert "wrong" not in str(bad_login.value)
        with pytest.raises(NotifyError) as untrusted:
            send(notifier(c.port, security="starttls"), sample_incident())
        assert untrusted.value.retryable is False
        assert "TLS failed" in str(untrusted.value)
    finally:
        c.stop()


def test_server_down_is_retryable() -> None:
    """Nobody listening: retry later."""
    with pytest.raises(NotifyError) as e:
        send(notifier(free_port()), sample_incident())
    assert e.value.retryable is True


def test_a_repeat_carries_the_same_message_id_and_a_key_is_one_thread() -> None:
    """The Message-ID comes from the delivery key; follow-ups reply to the key's thread root."""
    from dataclasses import replace

    from oomwatch.model import FollowUp
    from oomwatch.notify.email import message

    inc = sample_incident("node-1")
    first = message(inc, "a@x", ["b@x"], f"{inc.id}/mail")
    again = message(inc, "a@x", ["b@x"], f"{inc.id}/mail")
    other = message(inc, "a@x", ["b@x"], f"{inc.id}/other")
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    follow = replace(inc, id="followup:x", followup=FollowUp(2, (1, 2), ("a", "b"), 300.0))
    reply = message(follow, "a@x", ["b@x"], "followup:x/mail")
    assert reply["In-Reply-To"] == first["References"] == reply["References"]
    assert first["In-Reply-To"] is None
