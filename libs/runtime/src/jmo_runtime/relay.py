"""The relay: from a service's event log to Kafka, at least once, in order, resumable."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jmo_eventstore import EventStore, RecordedEvent

from .kafka_security import KafkaCredentials, client_options

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class RecordPublisher(Protocol):
    """Publishes records in the given order and returns only once the broker has them all."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> None: ...


class Checkpoints(Protocol):
    """Where a relay remembers the last position it published, guarded by a lease."""

    async def acquire(self, relay: str, owner: str, lease_seconds: float) -> int | None:
        """The checkpoint if ``owner`` holds (or now takes) the lease, else ``None``."""

    async def save(self, relay: str, owner: str, position: int) -> bool:
        """Store the position; ``False`` if ``owner`` no longer holds the lease."""


class KafkaRecordPublisher:
    """aiokafka producer with idempotence (acks=all): retries cannot reorder or duplicate a partition."""

    def __init__(self, bootstrap_servers: str, client_id: str, credentials: KafkaCredentials | None = None) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, client_id=client_id, enable_idempotence=True, acks="all", linger_ms=5, **client_options(credentials)
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        pending = [await self._producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*pending)


class MongoCheckpoints:
    """Checkpoints with a lease in one small collection (``find_one_and_update``, no transaction)."""

    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def acquire(self, relay: str, owner: str, lease_seconds: float) -> int | None:
        now = datetime.now(UTC)
        until = (now + timedelta(seconds=lease_seconds)).isoformat()
        doc = await self._c.find_one_and_update(
            {"_id": relay, "$or": [{"owner": owner}, {"lease_until": {"$lt": now.isoformat()}}]},
            {"$set": {"owner": owner, "lease_until": until}},
            return_document=True,
        )
        if doc is None:
            try:
                await self._c.insert_one({"_id": relay, "owner": owner, "lease_until": until, "position": 0})
            except DuplicateKeyError:
                return None  # someone else holds it
            return 0
        return int(doc["position"])

    async def save(self, relay: str, owner: str, position: int) -> bool:
        result = await self._c.update_one({"_id": relay, "owner": owner}, {"$set": {"position": position}})
        return result.matched_count == 1


class InMemoryCheckpoints:
    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.owners: dict[str, str] = {}

    async def acquire(self, relay: str, owner: str, lease_seconds: float) -> int | None:
        if self.owners.setdefault(relay, owner) != owner:
            return None
        return self.positions.get(relay, 0)

    async def save(self, relay: str, owner: str, position: int) -> bool:
        if self.owners.get(relay) != owner:
            return False
        self.positions[relay] = position
        return True


def to_record(event: RecordedEvent, topic: str) -> OutgoingRecord:
    env = event.envelope
    headers = [(k, v.encode()) for k, v in env.kafka_headers().items()]
    headers.append(("correlation_id", env.correlation_id.encode()))  # what faststream consumers read
    return OutgoingRecord(topic=topic, key=env.stream_id.encode(), value=env.to_json(), headers=headers)


class Relay:
    """Publishes a store's events in global order and records how far it got.

    At least once: the checkpoint moves only after Kafka acknowledged the batch, so a crash
    re-publishes at most one batch (consumers deduplicate by message id). Order per stream is
    the store's order, kept per partition because the key is the stream id. Two relays on one
    store are safe: a lease lets one publish while the other waits to take over.
    """

    def __init__(
        self,
        name: str,
        store: EventStore,
        publisher: RecordPublisher,
        checkpoints: Checkpoints,
        topic_for: Callable[[str], str],
        *,
        batch_size: int = 500,
        lease_seconds: float = 10.0,
        owner: str | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.publisher = publisher
        self.checkpoints = checkpoints
        self.topic_for = topic_for
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.published = 0
        self._round = asyncio.Lock()  # one round at a time per instance (the loop and a flush may overlap)

    async def run_once(self) -> int:
        """Sequence, publish one batch, checkpoint. Returns how many events were published."""
        async with self._round:
            return await self._round_once()

    async def _round_once(self) -> int:
        await self.store.sequence()
        position = await self.checkpoints.acquire(self.name, self.owner, self.lease_seconds)
        if position is None:
            return 0
        events = await self.store.read_all(position, limit=self.batch_size)
        if not events:
            return 0
        await self.publisher.publish([to_record(e, self.topic_for(e.envelope.type)) for e in events])
        if not await self.checkpoints.save(self.name, self.owner, events[-1].position or position):
            log.warning("relay lost its lease; another instance continues", relay=self.name)
            return 0
        self.published += len(events)
        return len(events)

    async def run(self, stop: asyncio.Event, idle_seconds: float = 0.05, *, wake: asyncio.Event | None = None, max_idle_seconds: float = 1.0) -> None:
        """Loop until ``stop`` is set. When idle, wait longer and longer (up to ``max_idle_seconds``)
        unless ``wake`` is set (the service sets it after appending). Errors are logged and retried."""
        wake = wake or asyncio.Event()
        idle = idle_seconds
        while not stop.is_set():
            wake.clear()
            try:
                n = await self.run_once()
            except Exception:
                if _being_cancelled():
                    raise asyncio.CancelledError from None  # PyMongo reports a cancellation as a network error
                log.exception("relay round failed; retrying", relay=self.name)
                n = 0
                idle = min(max(idle, 0.5) * 2, 5.0)
            if n:
                idle = idle_seconds
                continue
            await _first_of(stop, wake, timeout=idle)
            idle = min(idle * 2, max_idle_seconds) if not wake.is_set() else idle_seconds


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
