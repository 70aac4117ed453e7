"""A consumer that opens sealed personal fields, on the real broker: what it opens reaches the
handler readable; what arrives in clear, or for an erased participant, is parked with its reason,
and no DLQ copy holds a personal value in clear."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from jmo_contracts import Envelope, new_id
from jmo_contracts.topics import TopicSpec, dlq
from jmo_devstack.topics import create_topics, read_records
from jmo_eventstore import FieldEncryptionCodec, InMemoryKeyRing, participant_subject
from jmo_eventstore.testing import an_event
from jmo_runtime.kafka_security import faststream_security
from jmo_runtime.messaging import DLQ_REASON, publish, subscribe
from jmo_runtime.wire import open_envelope, seal_envelope

from .test_wire import registered_event

pytestmark = pytest.mark.integration


async def test_sealed_fields_are_opened_for_the_handler_and_clear_or_erased_ones_parked_without_a_clear_copy(infra: Any, run_id: str) -> None:
    topic = f"{run_id}.wire-{new_id()[:6]}"
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=[TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), partitions=1)])
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    readable, erased = registered_event(new_id()), registered_event(new_id())
    sealed, sealed_erased = await seal_envelope(codec, readable), await seal_envelope(codec, erased)
    await keys.erase(participant_subject(erased.payload["participant_id"]))
    clear = registered_event(new_id())
    clear_and_from_the_future = registered_event(new_id()).model_copy(update={"schema_version": 99})
    last = an_event(f"test-{new_id()}")
    handled: list[Envelope] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope)
        if envelope.message_id == last.message_id:
            done.set()

    broker = KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.admin_options()))
    subscribe(broker, topic, group_id=f"wire-{run_id}", handler=handler, description="test", opener=lambda e: open_envelope(codec, e))
    async with broker:
        await broker.start()
        for envelope in (sealed, clear, clear_and_from_the_future, sealed_erased, last):
            await publish(broker, topic, envelope)
        await asyncio.wait_for(done.wait(), 60)
    parked = await read_records(infra.kafka_bootstrap, dlq(topic), 3, client_options=infra.admin_options())

    assert [e.message_id for e in handled] == [readable.message_id, last.message_id]
    assert handled[0].payload == readable.payload  # opened before the handler
    reasons = {Envelope.from_json(r.value).message_id: dict(r.headers)[DLQ_REASON].decode() for r in parked}
    assert reasons == {clear.message_id: "PERSONAL_DATA_IN_CLEAR", clear_and_from_the_future.message_id: "UNKNOWN_TYPE", erased.message_id: "PARTICIPANT_ERASED"}
    for value in (clear.payload["nik"], clear_and_from_the_future.payload["nik"], erased.payload["nik"]):
        assert not [r for r in parked if value.encode() in r.value]  # withheld, or still sealed
