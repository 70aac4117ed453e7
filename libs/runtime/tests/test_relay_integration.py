"""The relay on the real stack: FerretDB log, Kafka topic, a crash and a second instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, new_id, stream_id
from jmo_contracts.topics import TopicSpec
from jmo_devstack.topics import create_topics
from jmo_eventstore import MongoEventStore
from jmo_eventstore.testing import an_event
from jmo_eventstore.model import ConcurrencyConflict
from jmo_eventstore.mongo import SLOT_PREFIX
from jmo_runtime.kafka_security import credentials_from_options
from jmo_runtime.relay import KafkaRecordPublisher, Relay

pytestmark = pytest.mark.integration
STREAMS, PER_STREAM = 8, 25


@pytest.fixture
async def database(infra: Any, database_prefix: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, socketTimeoutMS=20_000)
    yield client[f"{database_prefix}relay_{new_id()[:6]}"]
    await client.close()


@pytest.fixture
async def log(database: Any) -> tuple[MongoEventStore, list[str]]:
    store = MongoEventStore(database)
    await store.ensure_indexes()
    streams = [stream_id("test") for _ in range(STREAMS)]
    for v in range(PER_STREAM):
        for s in streams:
            await store.append(s, v, [an_event(s, v)], cause_id=new_id())
    return store, streams


@pytest.fixture
async def topic(infra: Any, run_id: str) -> str:
    name = f"{run_id}.relay-{new_id()[:6]}"
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=[TopicSpec(name, partitions=3)])
    return name


async def consume_all(bootstrap: str, topic: str, expected: int, options: dict[str, Any]) -> list[Envelope]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", **options)
    await consumer.start()
    out: list[Envelope] = []
    try:
        for _ in range(40):  # bounded: ~20 s
            batches = await consumer.getmany(timeout_ms=500)
            out.extend(Envelope.from_json(r.value) for rs in batches.values() for r in rs)
            if len({e.message_id for e in out}) >= expected:
                # a little longer, to see duplicates too
                batches = await consumer.getmany(timeout_ms=1000)
                out.extend(Envelope.from_json(r.value) for rs in batches.values() for r in rs)
                break
        return out
    finally:
        await consumer.stop()


def assert_complete_and_ordered(received: list[Envelope], streams: list[str], note: str = "") -> None:
    assert len({e.message_id for e in received}) == STREAMS * PER_STREAM, f"{len({e.message_id for e in received})} distinct of {len(received)} received; {note}"
    for s in streams:
        first_seen = list(dict.fromkeys(e.message_id for e in received if e.stream_id == s))
        numbers = [int(e.payload["reason"].split()[1]) for e in received if e.stream_id == s and e.message_id in first_seen]
        assert sorted(set(numbers)) == list(range(PER_STREAM))
        assert list(dict.fromkeys(numbers)) == list(range(PER_STREAM))


async def slots(database: Any) -> int:
    """Outbox slots left in the log (a scan: fine in a test)."""
    return await database["events_commits"].count_documents({"_id": {"$regex": f"^{SLOT_PREFIX}"}})


def a_relay(store: MongoEventStore, publisher: Any, topic: str, recover_after: float = 10.0) -> Relay:
    return Relay("events", store, publisher, lambda _t: topic, batch_size=20, recover_after=recover_after, recover_every=0.05, settle_seconds=0.05)


class DiesMidBatch:
    """A publisher whose process dies after sending ``limit`` records: what it sent is on Kafka,
    but the relay never gets to settle it."""

    def __init__(self, inner: KafkaRecordPublisher, limit: int) -> None:
        self.inner, self.left = inner, limit

    async def publish(self, records: Any) -> None:
        sent = list(records)[: self.left]
        await self.inner.publish(sent)
        self.left -= len(sent)
        if self.left <= 0:
            raise SystemExit("killed")


async def test_a_relay_killed_mid_batch_leaves_its_commits_pending_and_another_instance_publishes_them_in_stream_order(infra: Any, log: Any, database: Any, topic: str) -> None:
    store, streams = log
    publisher = KafkaRecordPublisher(infra.kafka_bootstrap, client_id="relay-test", credentials=credentials_from_options(infra.admin_options()))
    await publisher.start()
    try:
        first = a_relay(store, DiesMidBatch(publisher, limit=70), topic)  # type: ignore[arg-type]
        with pytest.raises(SystemExit):
            for _ in range(10):
                await first.run_once()
        assert first.published == 60  # three batches acknowledged, the fourth half sent when it died
        other = MongoEventStore(database)  # another instance: nothing of the dead one's in memory
        second = a_relay(other, publisher, topic, recover_after=0.01)
        for _ in range(400):
            if not await second.run_once():
                await asyncio.sleep(0.02)
            if await slots(database) == 0:
                break
        await second.settle()
        assert await slots(database) == 0
    finally:
        await publisher.stop()
    received = await consume_all(infra.kafka_bootstrap, topic, STREAMS * PER_STREAM, infra.admin_options())
    assert len({e.message_id for e in received}) == STREAMS * PER_STREAM
    assert_complete_and_ordered(received, streams)


async def test_two_instances_appending_to_the_same_streams_deliver_everything_in_stream_order(infra: Any, database: Any, topic: str) -> None:
    stores = [MongoEventStore(database), MongoEventStore(database)]
    await stores[0].ensure_indexes()
    streams = [stream_id("test") for _ in range(STREAMS)]
    publishers = [KafkaRecordPublisher(infra.kafka_bootstrap, client_id=f"relay-{i}", credentials=credentials_from_options(infra.admin_options())) for i in range(2)]
    for p in publishers:
        await p.start()
    stop = asyncio.Event()
    relays = [a_relay(st, p, topic) for st, p in zip(stores, publishers, strict=True)]
    tasks = [asyncio.create_task(r.run(stop, idle_seconds=0.01)) for r in relays]

    async def writer(number: int) -> None:
        for v in range(PER_STREAM):
            for s in streams:
                st = stores[(v + number) % 2]  # the streams move between the instances all the time
                while True:
                    version = len(await st.read_stream(s, cached=True))
                    if version > v:
                        break
                    try:
                        await st.append(s, version, [an_event(s, v)], cause_id=f"{s}-{v}")
                        break
                    except ConcurrencyConflict:
                        await asyncio.sleep(0.001)

    try:
        await asyncio.gather(writer(0), writer(1))
        for _ in range(500):
            if await slots(database) == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for p in publishers:
            await p.stop()
    assert_complete_and_ordered(await consume_all(infra.kafka_bootstrap, topic, STREAMS * PER_STREAM, infra.admin_options()), streams)
