"""Email over SMTP (aiosmtplib) and SMS through an HTTP provider (aiohttp), each one attempt per call,
over connections kept open between calls (an SMTP pool, aiohttp's keep-alive).

Retrying is the caller's business (see :mod:`jmo_notification.application.delivery`); an adapter
only says whether a failed attempt is worth retrying (:class:`TransientDeliveryError`) or not
(:class:`PermanentDeliveryError`). Both carry a reason without personal data.

Idempotency towards the provider: the SMS request carries ``Idempotency-Key: <notification_id>``
and the email a deterministic ``Message-ID: <notification_id@domain>``, so a send repeated after a
crash (the claim was taken over) is recognised by a provider or mailbox that dedupes on them, as
the local sinks do.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import aiohttp
import aiosmtplib
from jmo_runtime.http_client import SessionOnFirstUse, attempt_timeout

from ..settings import NotificationSettings


class DeliveryError(Exception):
    """An attempt failed; ``reason`` is safe to log and to put in an event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientDeliveryError(DeliveryError):
    """Worth another attempt: timeout, connection refused, SMTP 4xx, HTTP 5xx / 408 / 429."""


class PermanentDeliveryError(DeliveryError):
    """Not worth another attempt: SMTP 5xx, HTTP 4xx (the provider refused this message)."""


@dataclass(frozen=True)
class Outgoing:
    """One message to hand to a provider."""

    notification_id: str
    to: str
    subject: str | None
    body: str


class Channel(Protocol):
    """A provider adapter: one attempt, returns the provider's message id when it gives one."""

    name: str

    async def send(self, message: Outgoing) -> str | None: ...


class SmtpChannel:
    """Email through an SMTP server (TLS none / STARTTLS / implicit TLS, optional login).

    Connections are kept open and reused, up to ``connections`` at once (one message on each at a
    time): a message costs MAIL, RCPT and DATA, not a new TCP (and TLS) connection, EHLO, STARTTLS,
    AUTH and QUIT each time. A connection that failed is closed, never reused. One the server closed
    while it was idle (servers time idle sessions out) is found closed and replaced; should the
    server close it just as a message goes out, the message is tried once more on a new connection,
    with the same ``Message-ID``. :meth:`close` quits them all.
    """

    name = "email"

    def __init__(self, host: str, port: int, *, sender: str, tls: str = "none", username: str | None = None, password: str | None = None,
                 timeout: float = 10.0, message_id_domain: str = "jmo.local", connections: int = 16) -> None:
        self.host, self.port, self.sender, self.tls = host, port, sender, tls
        self.username, self.password, self.timeout, self.domain = username, password, timeout, message_id_domain
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[aiosmtplib.SMTP] = []
        #: Connections opened so far (for tests and benchmarks).
        self.opened = 0

    def message_id(self, notification_id: str) -> str:
        return f"<{notification_id}@{self.domain}>"

    def _compose(self, message: Outgoing) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = message.subject or ""
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = self.message_id(message.notification_id)
        email.set_content(message.body)
        return email

    async def send(self, message: Outgoing) -> str | None:
        email = self._compose(message)
        try:
            async with self._slots:
                await self._deliver(email)
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            if any(500 <= c < 600 for c in codes):
                raise PermanentDeliveryError(f"SMTP server refused the recipient ({codes[0]})") from None
            raise TransientDeliveryError(f"SMTP server deferred the recipient ({codes[0] if codes else '?'})") from None
        except aiosmtplib.SMTPResponseException as e:
            if 500 <= e.code < 600:
                raise PermanentDeliveryError(f"SMTP server answered {e.code}") from None
            raise TransientDeliveryError(f"SMTP server answered {e.code}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise TransientDeliveryError(f"SMTP server not reachable ({type(e).__name__})") from None
        return self.message_id(message.notification_id)

    async def _deliver(self, email: EmailMessage) -> None:
        """Send on an idle connection, or a new one; keep the connection only if all went well."""
        client = self._reusable()
        if client is not None:
            try:
                await client.send_message(email)
            except aiosmtplib.SMTPServerDisconnected:
                client.close()  # closed by the server as we began: once more, on a new connection
            except BaseException:
                client.close()
                raise
            else:
                self._idle.append(client)
                return
        client = await self._connect()
        try:
            await client.send_message(email)
        except BaseException:
            client.close()
            raise
        self._idle.append(client)

    def _reusable(self) -> aiosmtplib.SMTP | None:
        """The most recently used idle connection still open (closed ones are dropped)."""
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
            client.close()
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username, password=self.password, timeout=self.timeout,
            use_tls=self.tls == "tls", start_tls=True if self.tls == "starttls" else False,
            tls_context=ssl.create_default_context() if self.tls != "none" else None,
        )
        self.opened += 1
        try:
            await client.connect()  # EHLO, STARTTLS and AUTH as configured
        except BaseException:
            client.close()
            raise
        return client

    async def close(self) -> None:
        """Quit every idle connection (politely; one that does not answer is just closed)."""
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit(timeout=min(self.timeout, 2.0))
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


class HttpSmsChannel:
    """SMS through an HTTP provider: ``POST url`` JSON ``{to, body, sender}`` with ``Idempotency-Key``
    (and ``Authorization: Bearer <api_key>`` when given); any 2xx is success, its ``{"id"}`` the
    provider's message id. 5xx, 408, 425, 429, timeouts and connection failures are transient, other
    statuses permanent.

    ``session``: an :class:`aiohttp.ClientSession` to use instead of one of its own, which is made on
    first use (inside the running event loop, as aiohttp needs) and closed by :meth:`close`.
    """

    name = "sms"

    def __init__(self, url: str, *, sender: str, api_key: str | None = None, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.url, self.sender = url, sender
        self._authorization = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = attempt_timeout(timeout)
        self._session = SessionOnFirstUse(session)

    async def send(self, message: Outgoing) -> str | None:
        try:
            async with self._session().post(self.url, json={"to": message.to, "body": message.body, "sender": self.sender},
                                            headers={**self._authorization, "Idempotency-Key": message.notification_id}, timeout=self._timeout) as response:
                status = response.status
                answer = await response.read() if 200 <= status < 300 else b""
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TransientDeliveryError(f"SMS provider not reachable ({type(e).__name__})") from None
        if 200 <= status < 300:
            try:
                data = json.loads(answer)
            except ValueError:
                return None
            return str(data.get("id")) if isinstance(data, dict) and data.get("id") is not None else None
        if status >= 500 or status in (408, 425, 429):
            raise TransientDeliveryError(f"SMS provider answered HTTP {status}")
        raise PermanentDeliveryError(f"SMS provider answered HTTP {status}")

    async def close(self) -> None:
        """Close the session this channel made (a given one is its owner's to close)."""
        await self._session.close()


def channels_from(settings: NotificationSettings) -> dict[str, Channel]:
    """The SMTP and SMS adapters the settings describe, by channel name (nothing connects until a send)."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    api_key = settings.sms_api_key.get_secret_value() if settings.sms_api_key else None
    return {
        "email": SmtpChannel(settings.smtp_host, settings.smtp_port, sender=settings.smtp_sender, tls=settings.smtp_tls, username=settings.smtp_username,
                             password=password, timeout=settings.provider_timeout_seconds, message_id_domain=settings.smtp_message_id_domain,
                             connections=settings.smtp_connections),
        "sms": HttpSmsChannel(settings.sms_url, sender=settings.sms_sender, api_key=api_key, timeout=settings.provider_timeout_seconds),
    }
