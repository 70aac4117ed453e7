"""The notification service wired in memory (TestKafkaBroker, in-memory store, fake providers, a fake
clock): the same subscribers and :class:`~jmo_notification.application.delivery.Notifier` as in
production, built through ``build``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from datetime import UTC, datetime, timedelta

import pytest

from jmo_contracts import Envelope, topics
from jmo_eventstore import InMemoryEventStore
from jmo_notification.adapters.channels import Outgoing
from jmo_notification.entrypoint.app import build
from jmo_notification.settings import NotificationSettings
from jmo_runtime import Service
from jmo_runtime.relay import InMemoryCheckpoints
from jmo_runtime.messaging import message_itself
from jmo_runtime.testing import running_in_memory

from .fixtures import EMAIL, KEY, KEY_ID, otp_request

pytestmark = pytest.mark.component

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


class RecordingChannel:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def send(self, message: Outgoing) -> str | None:
        self.sent.append(message)
        return f"id-{len(self.sent)}"


@dataclass
class Wired:
    service: Service
    email: RecordingChannel
    events: list[Envelope]
    parked: list[Any]
    now: datetime

    async def deliver(self, topic: str, envelope: Envelope) -> None:
        await self.service.broker.publish(envelope.to_json(), topic=topic)
        while await self.service.relay_once():
            pass


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    key = base64.b64encode(KEY).decode()
    settings = NotificationSettings(topic_prefix="", database_prefix="", otp_delivery_key=key, otp_delivery_key_id=KEY_ID, notification_data_key=base64.b64encode(bytes(32)).decode())
    email = RecordingChannel()
    state = Wired(None, email, [], [], NOW)  # type: ignore[arg-type]
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints(), channels={"email": email, "sms": RecordingChannel()}, clock=lambda: state.now)

    @service.broker.subscriber(topics.dlq(topics.OTP_DELIVERY), group_id="test-dlq-observer", decoder=message_itself)
    async def parked(msg: Any) -> None:
        state.parked.append(msg)

    async with running_in_memory(service, topics.events("notification")) as events:
        state.service, state.events = service, events
        yield state


async def test_given_a_sealed_otp_when_it_is_delivered_twice_then_the_participant_gets_one_email_and_the_log_one_sent(wired: Wired) -> None:
    request = otp_request("048213", now=NOW)
    await wired.deliver(topics.OTP_DELIVERY, request)
    await wired.deliver(topics.OTP_DELIVERY, request)
    [sent] = wired.email.sent
    assert sent.to == EMAIL and "048213" in sent.body
    assert [(e.type, e.causation_id) for e in wired.events] == [("NotificationSent", request.message_id)]
    assert wired.parked == []


async def test_given_the_clock_past_the_code_s_expiry_when_it_arrives_then_nothing_is_sent_and_the_request_is_parked(wired: Wired) -> None:
    request = otp_request("048213", now=NOW, expires_in=300)
    wired.now = NOW + timedelta(minutes=6)
    await wired.deliver(topics.OTP_DELIVERY, request)
    assert wired.email.sent == []
    assert [(e.type, e.payload["reason_code"]) for e in wired.events] == [("NotificationFailed", "CODE_EXPIRED")]
    [dlq] = wired.parked
    assert dlq.body == request.to_json() and dlq.headers["jmo-dlq-reason"] == "NOTIFICATION_FAILED"
    assert dlq.headers["jmo-notification-id"] == wired.events[0].payload["notification_id"]
