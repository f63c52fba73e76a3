"""Email over SMTP: STARTTLS or implicit TLS, optional login, text and HTML parts."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from oomwatch.incidents import Incident
from oomwatch.notify import NotifyError
from oomwatch.notify.render import details, facts, header_safe, html_escape, plain_text


def message(inc: Incident, sender: str, to: list[str]) -> EmailMessage:
    """The email: a subject with host, victim and where; text and HTML bodies."""
    b = inc.body
    v = b.get("victim") or {}
    host = b.get("host") or "?"
    if inc.kind == "oom_kill":
        subject = f"[oomwatch] OOM kill on {host}: {v.get('comm')} (pid {v.get('pid')})"
        if b.get("where"):
            subject += f" in {b['where']}"
    else:
        subject = f"[oomwatch] {inc.status}: {inc.title}"
    msg = EmailMessage()
    msg["Subject"] = header_safe(subject)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid("oomwatch")
    msg["X-Oomwatch-Key"] = inc.key
    msg.set_content(plain_text(inc))
    why, advice = details(inc)
    rows = "".join(
        f"<tr><th align='left'>{html_escape(k)}</th><td>{html_escape(val)}</td></tr>"
        for k, val in facts(inc)
    )
    todo = "".join(f"<li>{html_escape(a)}</li>" for a in advice)
    msg.add_alternative(
        f"<html><body><h3>{html_escape(inc.title)}</h3><table>{rows}</table>"
        f"<p>{html_escape(why)}</p><ul>{todo}</ul>"
        f"<p><small>key {html_escape(inc.key)}</small></p></body></html>",
        subtype="html",
    )
    return msg


class EmailNotifier:
    """Sends one message per delivery (smtplib, in a worker thread)."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        security: str,
        username: str | None,
        password: str | None,
        verify: bool,
        ca_file: Path | None,
        sender: str,
        to: list[str],
    ) -> None:
        self.name = name
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.sender, self.to = sender, to
        self.context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if not verify:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Send the message."""
        await asyncio.to_thread(self._send, message(incident, self.sender, self.to))

    def _send(self, msg: EmailMessage) -> None:
        what = f"smtp {self.host}:{self.port}"
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=15, context=self.context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=15)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=self.context)
                if self.username:
                    try:
                        smtp.login(self.username, self.password or "")
                    except smtplib.SMTPServerDisconnected:
                        # servers hang up on a refused login once every mechanism failed
                        raise smtplib.SMTPAuthenticationError(535, b"disconnected") from None
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as e:
            raise NotifyError(
                f"{what}: login refused ({e.smtp_code})", retryable=False, reason="client_error"
            ) from None
        except smtplib.SMTPResponseException as e:
            retry = 400 <= e.smtp_code < 500
            raise NotifyError(
                f"{what}: {e.smtp_code} {e.smtp_error[:100]!r}",
                retryable=retry,
                reason="server_error" if retry else "client_error",
            ) from None
        except ssl.SSLError as e:
            raise NotifyError(
                f"{what}: TLS failed ({e.reason})", retryable=False, reason="client_error"
            ) from None
        except (smtplib.SMTPException, OSError) as e:
            raise NotifyError(
                f"{what}: {type(e).__name__}", retryable=True, reason="connection"
            ) from None

    async def aclose(self) -> None:
        """Nothing to release (one connection per message)."""
