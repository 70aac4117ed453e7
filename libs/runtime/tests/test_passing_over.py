"""A consumer that acts on a few of a topic's types passes the others over by their header, unread,
and still gives everything else the whole admission (issue 11: events topics carry every event of
their producer; issue 12: nothing unreadable or out of place slips through unseen)."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from jmo_contracts import Envelope, topics
from jmo_contracts.catalog import accepted_on, stream_kind_of
from jmo_contracts.envelope import HEADER_TYPE
from jmo_contracts.export import example_envelope
from jmo_contracts.identity import NikVerified, OtpIssued
from jmo_runtime.messaging import Boundary, ConsumerWatch, message_itself, publish, subscribe

pytestmark = pytest.mark.unit

TOPIC = topics.events("identity")
ACCEPTS = accepted_on(TOPIC)


def test_only_accepted_types_outside_those_acted_on_are_passed_over() -> None:
    boundary = Boundary(ACCEPTS, stream_kind_of(TOPIC), acts_on=frozenset({"NikVerified"}))
    assert boundary.passes_over("OtpIssued")
    assert not boundary.passes_over("NikVerified")  # acted on: read and checked
    assert not boundary.passes_over("RegisterParticipant")  # not carried here: refused as before
    assert not boundary.passes_over(None)  # no header: read, so that what it is can be told
    assert not boundary.passes_over(["OtpIssued"])  # not a type name at all
    assert not Boundary(ACCEPTS).passes_over("OtpIssued")  # a consumer that acts on every type


async def test_the_handler_sees_only_what_it_acts_on_and_the_rest_still_meets_admission() -> None:
    broker = KafkaBroker(apply_types=False)
    handled: list[str] = []
    parked: list[dict[str, Any]] = []
    watch = ConsumerWatch()

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.type)

    subscribe(broker, TOPIC, group_id="passing-over", handler=handler, description="test", watch=watch,
              boundary=Boundary(ACCEPTS, stream_kind_of(TOPIC), acts_on=frozenset({"NikVerified"})))

    @broker.subscriber(topics.dlq(TOPIC), group_id="dlq-observer", decoder=message_itself)
    async def observe_dlq(msg: Any) -> None:
        parked.append(dict(msg.headers))

    async with TestKafkaBroker(broker):
        await publish(broker, TOPIC, example_envelope(OtpIssued))  # passed over
        await publish(broker, TOPIC, example_envelope(NikVerified))  # acted on
        # the header names a type passed over, the body is not an envelope at all: still passed
        # over (only the producer can write here, and nothing of it is read or acted on) ...
        await broker.publish(b"{not json", topic=TOPIC, headers={HEADER_TYPE: "OtpIssued"})
        # ... but a header naming a type this topic does not carry, or none, is read and parked
        await broker.publish(b"{not json", topic=TOPIC, headers={HEADER_TYPE: "RegisterParticipant"})
        await broker.publish(b"{not json", topic=TOPIC)
        # and an acted-on type whose header lies about the body is caught by the check as before
        lying = example_envelope(OtpIssued)
        await broker.publish(lying.to_json(), topic=TOPIC, key=lying.stream_id.encode(), headers={**lying.kafka_headers(), HEADER_TYPE: "NikVerified"})

    assert handled == ["NikVerified"]
    assert watch.passed_over == 2
    assert len(parked) == 3
