"""The worst single messages a consumer can meet, on the real broker: each is parked with a reason
or refused, none reaches the handler, none is retried, and the message after them is handled.

faststream's in-memory broker neither redelivers nor runs the Kafka parser on raw headers, so
this runs on Kafka.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from jmo_contracts import Envelope, new_id
from jmo_contracts.topics import TopicSpec, dlq
from jmo_devstack.topics import create_topics, read_records
from jmo_eventstore.testing import an_event
from jmo_runtime.kafka_security import faststream_security
from jmo_runtime.messaging import (
    DLQ_ORIGINAL_SHA256,
    DLQ_ORIGINAL_SIZE,
    DLQ_REASON,
    MAX_DLQ_VALUE_BYTES,
    Boundary,
    ConsumerWatch,
    publish,
    subscribe,
)

pytestmark = pytest.mark.integration


def _nested(depth: int) -> bytes:
    head = f'{{"message_id":"{"a" * 32}","type":"CommandRejected","schema_version":1,"occurred_at":"2026-11-21T08:30:00Z","correlation_id":"{"b" * 32}","stream_id":"test-{"c" * 32}","payload":{{"x":'
    return head.encode() + b"[" * depth + b"]" * depth + b"}}"


async def test_hostile_messages_are_parked_with_a_reason_and_the_partition_moves_on(infra: Any, run_id: str) -> None:
    topic = f"{run_id}.hostile-{new_id()[:6]}"
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=[TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), partitions=1)])
    stream = f"test-{new_id()}"
    forged = an_event(f"other-{new_id()}", 1)  # accepted type, but addressed to another kind of stream
    fine = an_event(stream, 2)
    huge = b'{"x":"' + b"A" * 900_000 + b'"}'
    json_headers = [("content-type", b"application/json")]
    hostile: list[tuple[bytes, list[tuple[str, bytes | None]], str]] = [
        (_nested(20_000), json_headers, "INVALID_ENVELOPE"),  # faststream's json.loads raised RecursionError before any handler
        (fine.to_json().replace(b'"2026-', b'"0001-', 1).replace(b"Z\"", b'+14:00"', 1), [], "INVALID_ENVELOPE"),
        (fine.to_json(), [("jmo-type", b"\xff\xfe")], "INVALID_HEADERS"),  # not UTF-8
        (fine.to_json(), [("jmo-type", None)], "INVALID_HEADERS"),  # null
        (fine.to_json(), [("jmo-type", b"SelfieMatched")], "INVALID_HEADERS"),  # a header that lies about the type
        (huge, json_headers, "TOO_LARGE"),
        (forged.to_json(), [], "STREAM_NOT_OF_THIS_SERVICE"),
    ]
    handled: list[str] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.message_id)
        done.set()

    broker = KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.admin_options()))  # the mechanics, not the ACLs
    watch = ConsumerWatch()
    boundary = Boundary(frozenset({"CommandRejected"}), stream_kind="test")
    subscribe(broker, topic, group_id=f"hostile-{run_id}", handler=handler, description="test", boundary=boundary, watch=watch)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, max_request_size=2_000_000, **infra.admin_options())
    async with broker:
        await broker.start()
        await producer.start()
        try:
            for value, headers, _ in hostile:
                await producer.send_and_wait(topic, value, key=b"k", headers=headers)  # type: ignore[arg-type]
            await producer.send_and_wait(topic, fine.to_json(), key=b"k", headers=[("jmo-type", b"CommandRejected")])
        finally:
            await producer.stop()
        await asyncio.wait_for(done.wait(), 60)
    parked = await read_records(infra.kafka_bootstrap, dlq(topic), len(hostile), client_options=infra.admin_options())

    assert handled == [fine.message_id]
    assert [dict((k, v.decode()) for k, v in r.headers)[DLQ_REASON] for r in parked] == [reason for _, _, reason in hostile]
    [too_large] = [r for r in parked if dict(r.headers)[DLQ_REASON] == b"TOO_LARGE"]
    headers = {k: v.decode() for k, v in too_large.headers}
    assert len(too_large.value) == MAX_DLQ_VALUE_BYTES and headers[DLQ_ORIGINAL_SIZE] == str(len(huge))
    assert headers[DLQ_ORIGINAL_SHA256] == hashlib.sha256(huge).hexdigest()
    assert watch.stalled(0) == [] and watch.handled == 1 and watch.refused == 1


async def test_a_partition_held_by_one_message_is_reported_as_stalled_and_lagging_until_it_moves(infra: Any, run_id: str) -> None:
    topic = f"{run_id}.stall-{new_id()[:6]}"
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=[TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), partitions=1)])
    stream = f"test-{new_id()}"
    release, first_seen, all_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    handled: list[int] = []

    async def handler(envelope: Envelope) -> None:
        first_seen.set()
        await release.wait()  # a registry that does not answer, a lock never released...
        handled.append(int(envelope.payload["reason"].split()[1]))
        if len(handled) == 3:
            all_done.set()

    broker = KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.admin_options()))  # the mechanics, not the ACLs
    watch = ConsumerWatch()
    subscribe(broker, topic, group_id=f"stall-{run_id}", handler=handler, description="test", watch=watch)
    async with broker:
        await broker.start()
        for n in range(3):
            await publish(broker, topic, an_event(stream, n))
        await asyncio.wait_for(first_seen.wait(), 60)
        await asyncio.sleep(1.5)
        assert await watch.lagging(1.0) == []  # the first look only notes the position
        await asyncio.sleep(1.5)
        stalled, lagging = watch.stalled(1.0), await watch.lagging(1.0)
        release.set()
        await asyncio.wait_for(all_done.wait(), 60)
        await asyncio.sleep(0.5)
        after = watch.stalled(1.0), await watch.lagging(1.0)
    assert len(stalled) == 1 and stalled[0].startswith(f"{topic}/0@0 for ")
    assert len(lagging) == 1 and lagging[0].startswith(f"{topic}/0 lag ")
    assert after == ([], []) and handled == [0, 1, 2]
