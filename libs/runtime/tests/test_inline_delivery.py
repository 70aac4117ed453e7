"""faststream's in-memory broker delivers a publish inline, inside the publisher's await: a handler
that publishes to the topic it consumes, on its own stream, must still finish (the per-stream turns
that keep a real consumer from handling a stream twice at once are not taken there)."""

from __future__ import annotations

import asyncio

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from jmo_contracts import Envelope, new_id
from jmo_eventstore.testing import an_event
from jmo_runtime.messaging import publish, subscribe

pytestmark = pytest.mark.unit

TOPIC = "jmo.test.inline"


async def test_a_handler_publishing_to_its_own_topic_and_stream_finishes_on_the_in_memory_broker() -> None:
    broker = KafkaBroker(apply_types=False)
    stream = f"test-{new_id()}"
    first, second = an_event(stream, 1), an_event(stream, 2)
    handled: list[str] = []

    async def handler(envelope: Envelope) -> None:
        if envelope.message_id == first.message_id:
            await publish(broker, TOPIC, second)  # delivered before this returns
        handled.append(envelope.message_id)

    subscribe(broker, TOPIC, group_id="inline", handler=handler, description="test")
    async with TestKafkaBroker(broker):
        await asyncio.wait_for(publish(broker, TOPIC, first), 10)
    assert handled == [second.message_id, first.message_id]
