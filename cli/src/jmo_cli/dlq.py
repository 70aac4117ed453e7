"""``jmo dlq``: what the services parked in the dead-letter topics, and putting it back.

A consumer parks a message in ``<topic>.dlq`` when it cannot parse it, when its handler says it can
never succeed, or when the handler kept failing (``jmo_runtime.messaging``). The message stays
there byte for byte, with the reason in ``jmo-dlq-*`` headers. Once the cause is fixed (a new
version deployed, a registry's refusal resolved), ``replay`` publishes it again, unchanged, to the
topic it came from. Every consumer of that topic sees it again; that is safe because consumers
are idempotent by message id: whoever had already handled it ignores it.

On a secured Kafka, reading is done as ``ops`` (which reads every topic and writes none), and a
replay is published with the credentials of the origin topic's one producer
(``jmo_contracts.topics.producer_of``: the gateway for a commands topic, the service for its events
topic), from JMO_KAFKA_PASSWORD_<PRINCIPAL>. A replay is that producer's message once more, so every
topic keeps exactly one writer and the ops principal cannot forge a command or an event.

Nothing here prints a payload: parked messages carry personal data.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from jmo_contracts import Envelope, topics
from jmo_runtime import ServiceSettings
from jmo_runtime.messaging import DLQ_ERROR, DLQ_GROUP, DLQ_REASON, DLQ_SOURCE

app = typer.Typer(help="Dead-letter topics: list what was parked, replay it once the cause is fixed.", no_args_is_help=True)

#: Added to a replayed message: where it was parked (DLQ topic/partition/offset).
REPLAYED_FROM = "jmo-replayed-from"


@dataclass(frozen=True)
class Parked:
    """One entry of a DLQ topic."""

    dlq: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def origin(self) -> str:
        """The topic the message was parked from (and goes back to)."""
        return self.dlq.removesuffix(topics.DLQ_SUFFIX)

    @property
    def where(self) -> str:
        return f"{self.dlq}/{self.partition}/{self.offset}"

    def header(self, name: str) -> str | None:
        return next((v.decode(errors="replace") for k, v in self.headers if k == name), None)

    def summary(self) -> dict[str, Any]:
        """What an operator needs to decide, without the payload."""
        try:
            envelope: Envelope | None = Envelope.from_json(self.value)
        except Exception:  # noqa: BLE001 - an unparseable entry is listed all the same
            envelope = None
        return {
            "dlq": self.dlq, "partition": self.partition, "offset": self.offset,
            "parked_at": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "reason": self.header(DLQ_REASON), "error": self.header(DLQ_ERROR), "source": self.header(DLQ_SOURCE),
            "consumer_group": self.header(DLQ_GROUP), "type": self.header("jmo-type"),
            "message_id": envelope.message_id if envelope else None, "correlation_id": envelope.correlation_id if envelope else None,
            "replay_of": self.header(REPLAYED_FROM),
        }

    def replay_headers(self) -> list[tuple[str, bytes]]:
        kept = [(k, v) for k, v in self.headers if not k.startswith("jmo-dlq-") and k != REPLAYED_FROM]
        return [*kept, (REPLAYED_FROM, self.where.encode())]


def _options(principal: str) -> dict[str, Any]:
    from jmo_runtime.kafka_security import client_options, credentials_from_env

    return client_options(credentials_from_env(principal))


async def read_parked(bootstrap: str, dlq_topic: str, kafka_options: dict[str, Any] | None = None) -> list[Parked]:
    """Every entry of ``dlq_topic`` present now, oldest first (no consumer group: nothing is committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **(kafka_options if kafka_options is not None else _options("ops")))
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(dlq_topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 (no public refresh in aiokafka)
            partitions = consumer.partitions_for_topic(dlq_topic)
        if not partitions:
            raise LookupError(f"topic {dlq_topic} does not exist")
        assigned = [TopicPartition(dlq_topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in assigned])

        out: list[Parked] = []
        idle = 0
        while idle < 10 and await behind():  # bounded: ~10 s without progress
            batches = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batches else idle + 1
            for records in batches.values():
                out.extend(
                    Parked(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]
                )
        return sorted(out, key=lambda p: (p.timestamp_ms, p.partition, p.offset))
    finally:
        await consumer.stop()


async def replay(bootstrap: str, entries: list[Parked], *, topic_prefix: str = "") -> None:
    """Publish each entry again, unchanged, to the topic it was parked from (same key, no DLQ headers),
    as that topic's producer."""
    by_producer: dict[str, list[Parked]] = {}
    for entry in entries:
        by_producer.setdefault(topics.producer_of(entry.origin.removeprefix(topic_prefix)), []).append(entry)
    for principal, group in by_producer.items():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **_options(principal))
        await producer.start()
        try:
            for entry in group:
                await producer.send_and_wait(entry.origin, entry.value, key=entry.key, headers=entry.replay_headers())
        finally:
            await producer.stop()


def _dlq_topics(settings: ServiceSettings, topic: str | None) -> list[str]:
    if topic is None:
        return [s.name for s in topics.all_topics(settings.topic_prefix) if s.name.endswith(topics.DLQ_SUFFIX)]
    name = topic if topic.endswith(topics.DLQ_SUFFIX) else topics.dlq(topic)
    return [name if name.startswith(settings.topic_prefix) else settings.topic(name)]


def _echo(obj: object) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


@app.command("list")
def list_parked(topic: Annotated[str | None, typer.Argument(help="A DLQ topic (or the topic it belongs to); every DLQ if omitted.")] = None) -> None:
    """One JSON line per parked message: where, when, why (reason, error, consumer group), type and ids."""
    settings = ServiceSettings()

    async def go() -> None:
        for name in _dlq_topics(settings, topic):
            for entry in await read_parked(settings.kafka_bootstrap_servers, name):
                _echo(entry.summary())

    asyncio.run(go())


@app.command("replay")
def replay_parked(
    topic: Annotated[str, typer.Argument(help="The DLQ topic (or the topic it belongs to).")],
    offset: Annotated[list[int] | None, typer.Option("--offset", help="Only these offsets (repeatable).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Only entries parked for this reason, e.g. REGISTRY_REFUSED.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replayed, publish nothing.")] = False,
) -> None:
    """Publish parked messages again to the topic they came from, once their cause is fixed.

    The DLQ entries stay (Kafka is append-only): a replayed message carries ``jmo-replayed-from``,
    and replaying one twice is harmless (consumers are idempotent by message id).
    """
    settings = ServiceSettings()
    [name] = _dlq_topics(settings, topic)

    async def go() -> list[Parked]:
        chosen = [e for e in await read_parked(settings.kafka_bootstrap_servers, name) if (not offset or e.offset in offset) and (reason is None or e.header(DLQ_REASON) == reason)]
        if not dry_run:
            await replay(settings.kafka_bootstrap_servers, chosen, topic_prefix=settings.topic_prefix)
        return chosen

    for entry in asyncio.run(go()):
        _echo({"replayed": not dry_run, "to": entry.origin, **entry.summary()})
