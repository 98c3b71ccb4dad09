"""E-mail over SMTP with STARTTLS (and optional login), sent from a worker thread so the
event loop never waits on the mail server."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from auditkeep.alerts.model import Alert
from auditkeep.alerts.notify.base import DeliveryError, render_text


class EmailNotifier:
    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int = 587,
        sender: str,
        recipients: list[str],
        starttls: bool = True,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not recipients:
            raise ValueError("an e-mail notifier needs at least one recipient")
        if username is not None and not starttls:
            raise ValueError("refusing to send a password without STARTTLS")
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.starttls = starttls
        self.username = username
        self.password = password
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout = timeout

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[auditkeep] {alert.severity.upper()}: {alert.title}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=alert.id[:16], domain="auditkeep")
        msg["X-Auditkeep-Alert-Id"] = alert.id
        msg.set_content(render_text(alert) + "\n")
        return msg

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username is not None:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)

    async def send(self, alert: Alert) -> None:
        msg = self.message(alert)
        try:
            await asyncio.to_thread(self._send, msg)
        except smtplib.SMTPResponseException as exc:
            # 4xx replies are temporary by definition; 5xx are permanent
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=400 <= exc.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
