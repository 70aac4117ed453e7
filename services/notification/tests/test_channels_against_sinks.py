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
