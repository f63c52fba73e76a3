"""Email over SMTP: STARTTLS or implicit TLS, optional login, text and HTML parts."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from annotated_types import Gt, Lt

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.model import Incident
from oomwatch.notify.common import Context, NotifierKind, read_secret
from oomwatch.notify.facts import details, facts, header_safe, html_escape, plain_text
from oomwatch.strict import Strict, aliases, checked

if TYPE_CHECKING:
    from email.message import EmailMessage

    from oomwatch.settings import Settings

TIMEOUT_S = 15.0


def message(inc: Incident, sender: str, to: list[str], delivery_key: str = "") -> EmailMessage:
    """The email: a subject with host, victim and where; text and HTML bodies.

    The Message-ID is derived from the delivery key, so a repeat of one delivery
    (after a crash) carries the same one; every message of a key references one
    thread root, so mail clients show a key's messages together.
    """
    v = inc.victim
    drill = "[drill] " if inc.drill else ""
    if v is not None:
        subject = f"[oomwatch] {drill}OOM kill on {inc.host}: {v.comm} (pid {v.pid})"
        if inc.where and inc.where != "the host":
            subject += f" in {inc.where}"
    else:
        subject = f"[oomwatch] {drill}{inc.status}: {inc.title}"
    # the agent loads smtplib and the email package only for a receiver that sends mail
    from email.message import EmailMessage
    from email.utils import formatdate

    msg = EmailMessage()
    msg["Subject"] = header_safe(subject)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = f"<{_digest(delivery_key or inc.id)}@oomwatch>"
    root = f"<key.{inc.key}@oomwatch>"
    msg["References"] = root
    if inc.followup is not None:
        msg["In-Reply-To"] = root
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
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.sender, self.to = sender, to
        self.context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if not verify:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE

    async def send(self, incident: Incident, delivery_key: str) -> None:
        """Send the message."""
        await asyncio.to_thread(self._send, message(incident, self.sender, self.to, delivery_key))

    def _send(self, msg: EmailMessage) -> None:
        import smtplib

        what = f"smtp {self.host}:{self.port}"
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=self.context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
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
                f"{what}: login refused ({e.smtp_code})",
                retryable=False,
                reason=FailureReason.AUTH_ERROR,
            ) from None
        except smtplib.SMTPResponseException as e:
            retry = 400 <= e.smtp_code < 500
            raise NotifyError(
                f"{what}: {e.smtp_code} {e.smtp_error[:100]!r}",
                retryable=retry,
                reason=FailureReason.SERVER_ERROR if retry else FailureReason.CLIENT_ERROR,
            ) from None
        except ssl.SSLError as e:
            raise NotifyError(
                f"{what}: TLS failed ({e.reason})",
                retryable=False,
                reason=FailureReason.CLIENT_ERROR,
            ) from None
        except TimeoutError:
            raise NotifyError(
                f"{what}: timed out", retryable=True, reason=FailureReason.TIMEOUT
            ) from None
        except (smtplib.SMTPException, OSError) as e:
            raise NotifyError(
                f"{what}: {type(e).__name__}", retryable=True, reason=FailureReason.CONNECTION
            ) from None

    async def aclose(self) -> None:
        """Nothing to release (one connection per message)."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class EmailConfig(Strict):
    """SMTP, with STARTTLS or implicit TLS, optional login."""

    __pydantic_config__: ClassVar[dict[str, Any]] = aliases(sender="from")
    smtp_host: str
    smtp_port: Annotated[int, Gt(0), Lt(65536)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    verify: bool = True
    ca_file: Path | None = None
    sender: str
    to: list[str]
    timeout_s: Annotated[float, Gt(0)] = TIMEOUT_S


def _build(name: str, e: EmailConfig, _ctx: Context) -> EmailNotifier:
    return EmailNotifier(
        name,
        host=e.smtp_host,
        port=e.smtp_port,
        security=e.security,
        username=e.username,
        password=read_secret(e.password, e.password_file, "password"),
        verify=e.verify,
        ca_file=e.ca_file,
        sender=e.sender,
        to=e.to,
        timeout_s=e.timeout_s,
    )


def _describe(c: EmailConfig) -> str:
    return f"({c.smtp_host}:{c.smtp_port} {c.security}, to {', '.join(c.to)})"


def _from_settings(s: Settings) -> EmailConfig | None:
    if not (s.smtp_host and s.email_to):
        return None
    return checked(
        EmailConfig,
        **{
            "smtp_host": s.smtp_host,
            "smtp_port": s.smtp_port,
            "security": s.smtp_security,
            "username": s.smtp_username,
            "password": s.smtp_password,
            "password_file": s.smtp_password_file,
            "from": s.email_from or f"oomwatch@{s.hostname or 'localhost'}",
            "to": [a.strip() for a in s.email_to.split(",") if a.strip()],
        },
    )


KIND = NotifierKind("email", EmailConfig, _build, _describe, _from_settings)
