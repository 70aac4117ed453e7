"""The registration service wired in memory: faststream's TestKafkaBroker and the in-memory store,
through the same subscribers, command handler and relay as in production."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from jmo_contracts import Envelope, new_id, stream_id, topics
from jmo_contracts.registration import RegisterParticipant
from jmo_eventstore import InMemoryEventStore
from jmo_registration.entrypoint.app import build
from jmo_registration.settings import RegistrationSettings
from jmo_runtime import Service
from jmo_runtime.relay import InMemoryCheckpoints
from jmo_runtime.messaging import message_itself
from jmo_runtime.service import BrokerRecordPublisher

pytestmark = pytest.mark.component


@dataclass
class Wired:
    service: Service
    store: InMemoryEventStore
    events: list[Envelope]
    dead: list[tuple[bytes, dict[str, str]]]

    async def send(self, payload: bytes | Envelope) -> None:
        raw = payload.to_json() if isinstance(payload, Envelope) else payload
        await self.service.broker.publish(raw, topic=topics.commands("registration"))
        while await self.service.relay_once():
            pass


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    store = InMemoryEventStore()
    settings = RegistrationSettings(topic_prefix="", database_prefix="", nik_index_key=base64.b64encode(bytes(32)).decode())
    service = build(settings, store=store, checkpoints=InMemoryCheckpoints())
    service._relay_publisher = BrokerRecordPublisher(service.broker)  # the relay goes through the test broker
    events: list[Envelope] = []
    dead: list[tuple[bytes, dict[str, str]]] = []

    @service.broker.subscriber(topics.events("registration"), group_id="test-observer", decoder=message_itself)
    async def observe(msg: Any) -> None:
        events.append(Envelope.from_json(msg.body))

    @service.broker.subscriber(topics.dlq(topics.commands("registration")), group_id="test-dlq", decoder=message_itself)
    async def observe_dlq(msg: Any) -> None:
        dead.append((msg.body, dict(msg.headers)))

    async with TestKafkaBroker(service.broker):
        await service.start_store()
        await service.start_relay()
        yield Wired(service, store, events, dead)
        await service.stop()


def register(**changes: object) -> Envelope:
    body = {"category": "PU", "nik": "3201010508900001", "full_name": "Budi Santoso", "email": "budi@example.com", "phone": "081234567890", "otp_channel": "sms"} | changes
    return Envelope.wrap(RegisterParticipant.model_validate(body), stream_id=stream_id("registration"), correlation_id=new_id())


async def test_a_registration_command_is_answered_by_participant_registered_on_the_events_topic(wired: Wired) -> None:
    command = register()
    await wired.send(command)
    [event] = wired.events
    assert (event.type, event.correlation_id, event.causation_id, event.stream_id) == ("ParticipantRegistered", command.correlation_id, command.message_id, command.stream_id)
    assert [e.envelope.type for e in await wired.store.read_stream(command.stream_id)] == ["ParticipantRegistered"]


async def test_an_invalid_registration_is_rejected_with_a_reason_the_gateway_can_read(wired: Wired) -> None:
    await wired.send(register(nik="3201019908900001"))
    [event] = wired.events
    assert event.type == "CommandRejected"
    assert (event.payload["reason_code"], event.payload["command_type"]) == ("INVALID_NIK", "RegisterParticipant")


async def test_a_redelivered_command_changes_nothing(wired: Wired) -> None:
    command = register()
    await wired.send(command)
    await wired.send(command)
    assert len(await wired.store.read_stream(command.stream_id)) == 1
    assert [e.type for e in wired.events] == ["ParticipantRegistered"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "INVALID_ENVELOPE"),
        (b'{"type": "RegisterParticipant"}', "INVALID_ENVELOPE"),
        (register().model_copy(update={"type": "LaunchRocket"}).to_json(), "UNKNOWN_TYPE"),
        (register().model_copy(update={"payload": {"nik": 12}}).to_json(), "INVALID_PAYLOAD"),
    ],
)
async def test_what_cannot_be_parsed_goes_to_the_dlq_and_the_consumer_goes_on(wired: Wired, raw: bytes, reason: str) -> None:
    await wired.send(raw)
    [(body, headers)] = wired.dead
    assert body == raw
    assert headers["jmo-dlq-reason"] == reason
    assert headers["jmo-dlq-source"].startswith(topics.commands("registration"))
    await wired.send(register())
    assert [e.type for e in wired.events] == ["ParticipantRegistered"]
