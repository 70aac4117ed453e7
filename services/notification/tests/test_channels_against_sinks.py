"""The SMTP and SMS adapters against the local sinks, over the real protocols on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from jmo_notification.adapters.channels import HttpSmsChannel, Outgoing, PermanentDeliveryError, SmtpChannel, TransientDeliveryError

pytestmark = pytest.mark.integration

NID = "4e5f6a7b8c9d40e1f2a3b4c5d6e7f8a9"


def smtp(sinks: Any) -> SmtpChannel:
    return SmtpChannel("127.0.0.1", sinks.smtp_port, sender="BPJS Ketenagakerjaan <no-reply@jmo.local>", timeout=5)


def sms(sinks: Any) -> HttpSmsChannel:
    return HttpSmsChannel(f"{sinks.url}/messages", sender="BPJSTK", timeout=5)


async def test_an_email_arrives_with_subject_and_body_and_a_resend_with_the_same_message_id_is_kept_once(sinks: Any) -> None:
    channel = smtp(sinks)
    message = Outgoing(NID, "siti.aminah@example.com", "Kode verifikasi pendaftaran JMO", "Kode Anda 048213\n")
    assert await channel.send(message) == f"<{NID}@jmo.local>"
    await channel.send(message)
    [received] = sinks.messages(to="siti.aminah@example.com")
    assert (received["channel"], received["subject"], received["body"]) == ("email", "Kode verifikasi pendaftaran JMO", "Kode Anda 048213")


async def test_an_sms_arrives_and_a_resend_with_the_same_idempotency_key_is_kept_once(sinks: Any) -> None:
    channel = sms(sinks)
    message = Outgoing(NID, "+6281234567890", None, "JMO: Kode OTP 048213")
    await channel.send(message)
    await channel.send(message)
    await channel.close()
    [received] = sinks.messages(to="+6281234567890")
    assert (received["channel"], received["body"], received["sender"]) == ("sms", "JMO: Kode OTP 048213", "BPJSTK")


@pytest.mark.parametrize(("status", "error"), [(500, TransientDeliveryError), (503, TransientDeliveryError), (429, TransientDeliveryError), (400, PermanentDeliveryError)])
async def test_sms_provider_errors_are_transient_or_permanent_by_status(sinks: Any, status: int, error: type[Exception]) -> None:
    sinks.fault("sms", fail_next=1, status=status)
    channel = sms(sinks)
    with pytest.raises(error):
        await channel.send(Outgoing(NID, "+6281234567890", None, "x"))
    await channel.send(Outgoing(NID, "+6281234567890", None, "x"))  # the fault was for one request only
    await channel.close()


@pytest.mark.parametrize(("status", "error"), [(500, TransientDeliveryError), (400, PermanentDeliveryError)])
async def test_smtp_4xx_is_transient_and_5xx_permanent(sinks: Any, status: int, error: type[Exception]) -> None:
    sinks.fault("email", fail_next=1, status=status)  # the sink answers 451 / 550
    with pytest.raises(error):
        await smtp(sinks).send(Outgoing(NID, "siti.aminah@example.com", "s", "b"))


async def test_an_smtp_server_that_does_not_answer_is_transient() -> None:
    from jmo_devstack.net import free_port

    with pytest.raises(TransientDeliveryError):
        await SmtpChannel("127.0.0.1", free_port(), sender="x@jmo.local", timeout=2).send(Outgoing(NID, "a@example.com", "s", "b"))


class _CountingServer:
    """An SMTP server in this test's loop (aiosmtpd) that counts connections and keeps the
    messages' recipients; ``timeout``: it closes sessions idle that long, as servers do."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout, self.connections, self.received = timeout, 0, []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802 (aiosmtpd's hook)
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook)
        self.received.extend(envelope.rcpt_tos)
        return "250 OK"

    async def __aenter__(self) -> int:
        import asyncio

        from aiosmtpd.smtp import SMTP

        def session() -> SMTP:
            self.connections += 1
            return SMTP(self, hostname="counting.local", timeout=self.timeout)

        self._server = await asyncio.get_running_loop().create_server(session, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def __aexit__(self, *_: object) -> None:
        self._server.close()


async def test_emails_share_one_smtp_connection_while_they_come_one_after_another() -> None:
    server = _CountingServer()
    async with server as port:
        channel = SmtpChannel("127.0.0.1", port, sender="no-reply@jmo.local", timeout=5)
        for i in range(5):
            await channel.send(Outgoing(f"{i:032x}", f"p{i}@example.com", "s", "b"))
        await channel.close()
    assert server.received == [f"p{i}@example.com" for i in range(5)]
    assert (server.connections, channel.opened) == (1, 1)


async def test_emails_at_once_use_at_most_the_configured_connections() -> None:
    import asyncio

    server = _CountingServer()
    async with server as port:
        channel = SmtpChannel("127.0.0.1", port, sender="no-reply@jmo.local", timeout=5, connections=2)
        await asyncio.gather(*(channel.send(Outgoing(f"{i:032x}", f"p{i}@example.com", "s", "b")) for i in range(8)))
        await channel.close()
    assert sorted(server.received) == sorted(f"p{i}@example.com" for i in range(8))
    assert server.connections == channel.opened == 2


async def test_a_connection_the_server_timed_out_is_replaced_without_failing_the_email() -> None:
    import asyncio

    server = _CountingServer(timeout=0.3)
    async with server as port:
        channel = SmtpChannel("127.0.0.1", port, sender="no-reply@jmo.local", timeout=5)
        await channel.send(Outgoing("a" * 32, "first@example.com", "s", "b"))
        await asyncio.sleep(1.0)  # the server closes the idle session meanwhile
        await channel.send(Outgoing("b" * 32, "second@example.com", "s", "b"))
        await channel.close()
    assert server.received == ["first@example.com", "second@example.com"]
    assert server.connections == 2


async def test_a_refused_recipient_is_permanent_and_the_next_email_still_goes() -> None:
    server = _CountingServer()
    server.refuse.add("gone@example.com")
    async with server as port:
        channel = SmtpChannel("127.0.0.1", port, sender="no-reply@jmo.local", timeout=5)
        with pytest.raises(PermanentDeliveryError):
            await channel.send(Outgoing("a" * 32, "gone@example.com", "s", "b"))
        await channel.send(Outgoing("b" * 32, "here@example.com", "s", "b"))
        await channel.close()
    assert server.received == ["here@example.com"]
