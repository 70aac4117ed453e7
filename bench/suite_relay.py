"""Relay throughput: ``Relay`` (Kafka publisher, what the store instance appended) against a raw aiokafka producer."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from jmo_eventstore import MongoEventStore, PendingCommit
from jmo_runtime.kafka_security import credentials_from_options
from jmo_runtime.relay import KafkaRecordPublisher, OutgoingRecord, Relay, to_record

from context import Bench
from harness import Metric, Sample, Stopwatch, Trial, compare
from suite_replay import Log

BATCH = 500  # the relay's default batch size; the baseline sends in batches of the same size
PARTITIONS = 3


def relay_trial(bench: Bench, log: Log, publisher: KafkaRecordPublisher, pending: list[PendingCommit]) -> Trial:
    """A relay publishes the whole log to a fresh topic, as commits its store instance appended
    (put in the instance's queue untimed: appending is measured by the append suite)."""

    async def trial(round_no: int) -> Sample:
        topic = await bench.fresh_topic("relay", PARTITIONS)
        store = MongoEventStore(bench.db, log.store.commits.name.removesuffix("_commits"))
        store._queue.extend(pending)  # noqa: SLF001 (as if this instance had appended them)
        relay = Relay(f"bench-relay-{topic}", store, publisher, lambda _type: topic, batch_size=BATCH)
        async with Stopwatch() as sw:
            while relay.published < log.events:
                if not await relay.run_once():
                    raise RuntimeError(f"relay stopped after {relay.published} of {log.events} events")
            await relay.settle()
        return Sample(relay.published, sw.seconds)

    return trial


async def appended(log: Log) -> list[PendingCommit]:
    """The log's commits as its writer's queue held them: each with its events, in log order."""
    by_commit: dict[str, list] = {}
    after = 0
    while page := await log.store.read_all(after, limit=1000):
        for e in page:
            by_commit.setdefault(e.commit_id, []).append(e)
        after = page[-1].position
    return [PendingCommit(cid, events[0].stream_id, None, tuple(events)) for cid, events in by_commit.items()]


def producer_trial(bench: Bench, records: list[OutgoingRecord], producer: AIOKafkaProducer) -> Trial:
    """The same records, serialized beforehand, sent in batches: send all, then await the futures."""

    async def trial(round_no: int) -> Sample:
        topic = await bench.fresh_topic("raw", PARTITIONS)
        async with Stopwatch() as sw:
            for i in range(0, len(records), BATCH):
                pending = [await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records[i : i + BATCH]]
                await asyncio.gather(*pending)
        return Sample(len(records), sw.seconds)

    return trial


async def prepared_records(log: Log) -> list[OutgoingRecord]:
    """Every event of the log as the relay would publish it (topic set per trial)."""
    out: list[OutgoingRecord] = []
    after = 0
    while page := await log.store.read_all(after, limit=1000):
        out.extend(to_record(e, "unused") for e in page)
        after = page[-1].position
    return out


async def run(bench: Bench, log: Log) -> list[Metric]:
    records = await prepared_records(log)
    publisher = KafkaRecordPublisher(bench.bootstrap, client_id="bench-relay", credentials=credentials_from_options(bench.kafka_options))
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, client_id="bench-raw", enable_idempotence=True, acks="all", linger_ms=5, **bench.kafka_options)
    await publisher.start()
    await producer.start()
    try:
        pending = await appended(log)
        return [
            await compare(
                "relay", f"relay to Kafka, batches of {BATCH}", "events/s",
                relay_trial(bench, log, publisher, pending), producer_trial(bench, records, producer),
                baseline_is="raw AIOKafkaProducer (idempotent, acks=all, linger_ms=5) sending the same pre-serialized records, same batch size, fresh topic",
                sizes={"events": log.events, "batch": BATCH, "partitions": PARTITIONS},
            )
        ]
    finally:
        await producer.stop()
        await publisher.stop()
