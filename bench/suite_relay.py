"""Relay throughput: ``Relay`` (Kafka publisher, Mongo checkpoints) against a raw aiokafka producer."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from jmo_runtime.kafka_security import credentials_from_options
from jmo_runtime.relay import KafkaRecordPublisher, MongoCheckpoints, OutgoingRecord, Relay, to_record

from context import Bench
from harness import Metric, Sample, Stopwatch, Trial, compare
from suite_replay import Log

BATCH = 500  # the relay's default batch size; the baseline sends in batches of the same size
PARTITIONS = 3


def relay_trial(bench: Bench, log: Log, publisher: KafkaRecordPublisher, checkpoints: MongoCheckpoints) -> Trial:
    """A new relay (new name, so a new checkpoint) publishes the whole log to a fresh topic."""

    async def trial(round_no: int) -> Sample:
        topic = await bench.fresh_topic("relay", PARTITIONS)
        relay = Relay(f"bench-relay-{topic}", log.store, publisher, checkpoints, lambda _type: topic, batch_size=BATCH)
        # untimed: restart the store's 30 s reconciliation clock, so a periodic full scan of the
        # commits does not land in some trials and not in others (it is measured on its own)
        await log.store.sequence(reconcile=True)
        async with Stopwatch() as sw:
            while relay.published < log.events:
                if not await relay.run_once():
                    raise RuntimeError(f"relay stopped after {relay.published} of {log.events} events")
        return Sample(relay.published, sw.seconds)

    return trial


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
        checkpoints = MongoCheckpoints(bench.db["relay_checkpoints"])
        return [
            await compare(
                "relay", f"relay to Kafka, batches of {BATCH}", "events/s",
                relay_trial(bench, log, publisher, checkpoints), producer_trial(bench, records, producer),
                baseline_is="raw AIOKafkaProducer (idempotent, acks=all, linger_ms=5) sending the same pre-serialized records, same batch size, fresh topic",
                sizes={"events": log.events, "batch": BATCH, "partitions": PARTITIONS},
            )
        ]
    finally:
        await producer.stop()
        await publisher.stop()
