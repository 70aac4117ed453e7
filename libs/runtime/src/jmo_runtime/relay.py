"""The relay: from a service's event log to Kafka, right after each append, at least once, in order."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer

from jmo_eventstore import EventStore, PendingCommit, RecordedEvent

from .kafka_security import KafkaCredentials, client_options

log = structlog.get_logger(__name__)
#: Published commits remembered, so that a stream's next commit needs no check of its predecessor.
REMEMBERED = 20_000
#: Settle at once when this many published commits wait (one bulk delete).
SETTLE_BATCH = 90
#: Largest record the relay sends (key, value and headers); Kafka's default limit is 1 MiB. The
#: contracts bound every field far below this: a larger event is a bug, parked rather than retried.
MAX_RECORD_BYTES = 900 * 1024


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class RecordPublisher(Protocol):
    """Publishes records in the given order and returns only once the broker has them all."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> None: ...


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


class InMemoryCheckpoints:
    """Kept so that code written for the checkpointed relay still builds a :class:`~jmo_runtime.service.Service`;
    the relay keeps no checkpoint any more (the outbox is the store's)."""


def to_record(event: RecordedEvent, topic: str) -> OutgoingRecord:
    """The Kafka record of an event: its envelope with the payload as stored, personal fields
    sealed under the participant's key (:attr:`~jmo_eventstore.RecordedEvent.wire_envelope`), so
    nothing is encrypted again on the way out and Kafka holds no more than the log does."""
    env = event.wire_envelope
    headers = [(k, v.encode()) for k, v in env.kafka_headers().items()]
    headers.append(("correlation_id", env.correlation_id.encode()))  # what faststream consumers read
    return OutgoingRecord(topic=topic, key=env.stream_id.encode(), value=env.to_json(), headers=headers)


class Relay:
    """Publishes what the store's instance appended, right after the append, at least once, in order.

    The log is the outbox: each append leaves its commit pending in the store; the relay takes
    this instance's new commits from memory (no read), publishes their events, and once Kafka
    acknowledged them settles them (deletes their outbox records, batched every
    ``settle_seconds``). A crash loses nothing: what an instance silent for ``recover_after``
    seconds left pending is found by the next recovery round (every ``recover_every`` seconds) of another instance
    and published again; consumers deduplicate by message id. Every ``recover_every`` seconds the
    relay also tells the store that this instance is alive (``heartbeat``).

    Order per stream is the log's: before a commit the relay checks that the stream's previous
    commit is on Kafka (it published it itself, or its outbox record is gone), and publishes it
    first when it is still pending (written by another instance that has not published it yet).
    Several instances of a service each relay their own appends; no lease, no global position.
    """

    def __init__(
        self,
        name: str,
        store: EventStore,
        publisher: RecordPublisher,
        topic_for: Callable[[str], str],
        *,
        batch_size: int = 500,
        recover_after: float = 10.0,
        recover_every: float = 5.0,
        settle_seconds: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.publisher = publisher
        self.topic_for = topic_for
        self.batch_size = batch_size
        self.recover_after = recover_after
        self.recover_every = recover_every
        self.settle_seconds = settle_seconds
        self.owner = owner or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.published = 0
        self._round = asyncio.Lock()  # one round at a time per instance (the loop and a flush may overlap)
        self._retry: list[PendingCommit] = []  # taken, not yet acknowledged by Kafka
        self._on_kafka: OrderedDict[str, None] = OrderedDict()  # recently published commits (bounded)
        self._unsettled: list[str] = []  # published; outbox records not deleted yet
        self._settled_at = time.monotonic()
        self._recovered_at: float | None = None
        self.parked: list[str] = []  # commits whose events could never be published (see MAX_RECORD_BYTES)
        self._failing_since: float | None = None  # first of the rounds failing since the last that did not
        self.last_error: str | None = None  # the kind of error of the last failed round (its class name)

    def failing_for(self) -> float:
        """Seconds since the relay's rounds began failing without one succeeding since; 0 when the
        last round did not fail. Commits wait in the outbox meanwhile: ``/health`` reports it."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    async def run_once(self) -> int:
        """Publish one batch (this instance's appends, else what recovery finds), settle what is
        due. Returns how many events were published."""
        async with self._round:
            n = await self._publish_once()
            if self._unsettled and (len(self._unsettled) >= SETTLE_BATCH or time.monotonic() - self._settled_at >= self.settle_seconds):
                await self.settle()
            return n

    async def flush(self) -> int:
        """Publish everything this instance appended and settle it now (tests, shutdown)."""
        total = 0
        async with self._round:
            while n := await self._publish_once(recover=False):
                total += n
            await self.settle()
        return total

    async def settle(self) -> None:
        """Delete the outbox records of what Kafka acknowledged."""
        ids, self._unsettled = self._unsettled, []
        self._settled_at = time.monotonic()
        if not ids:
            return
        try:
            await self.store.settle(ids)
        except BaseException:
            self._unsettled = ids + self._unsettled
            raise

    async def _publish_once(self, *, recover: bool = True) -> int:
        retrying = bool(self._retry)
        # held from here on: what is taken from the store's queue is not handed out again, so a
        # round that fails anywhere below must leave it for the next (else it waits, unpublished,
        # until this instance dies and another's recovery finds it)
        batch = self._retry = self._retry or await self.store.appended_commits(self.batch_size)
        if recover and (self._recovered_at is None or time.monotonic() - self._recovered_at >= self.recover_every):
            self._recovered_at = time.monotonic()
            await self.store.heartbeat()
            await self.store.settle([])  # what the store can tidy by itself (slots of appends that lost a race)
            if not retrying:
                left = [c for c in await self.store.pending_commits(older_than=self.recover_after, limit=self.batch_size)]
                if left:
                    log.info("relay publishes commits a silent instance left pending", relay=self.name, commits=len(left))
                    batch = self._retry = batch + left
        if not batch:
            return 0
        ordered = await self._after_predecessors(batch)
        records = []
        for c in ordered:
            commit_records = [to_record(e, self.topic_for(e.envelope.type)) for e in c.events]
            if any(_size(r) > MAX_RECORD_BYTES for r in commit_records):
                # retrying cannot help: reported (logs, /health), passed over and settled like a
                # published commit (no other instance's recovery tries it again); the log keeps it
                self.parked.append(c.commit_id)
                log.error("relay parks a commit too large for Kafka", relay=self.name, commit_id=c.commit_id, event_types=[e.envelope.type for e in c.events])
                continue
            records.extend(commit_records)
        await self.publisher.publish(records)
        self._retry = []
        for c in ordered:
            self._on_kafka[c.commit_id] = None
            self._unsettled.append(c.commit_id)
        while len(self._on_kafka) > REMEMBERED:
            self._on_kafka.popitem(last=False)
        self.published += len(records)
        return len(records)

    async def _after_predecessors(self, batch: list[PendingCommit]) -> list[PendingCommit]:
        """``batch`` with, before each commit, its stream's earlier commits that are still pending
        (appended by another instance, not published yet). Usually no round trip: a stream's
        previous commit is in the batch or was published by this relay."""
        out: list[PendingCommit] = []
        taken: set[str] = set()
        for commit in batch:
            if commit.commit_id in taken:
                continue
            missing: list[PendingCommit] = []
            prev = commit.prev_commit
            while prev is not None and prev not in self._on_kafka and prev not in taken:
                earlier = await self.store.pending_commit(prev)
                if earlier is None:
                    self._on_kafka[prev] = None  # settled: on Kafka already
                    break
                missing.append(earlier)
                prev = earlier.prev_commit
            for c in [*reversed(missing), commit]:
                out.append(c)
                taken.add(c.commit_id)
        return out

    async def run(self, stop: asyncio.Event, idle_seconds: float = 0.05, *, wake: asyncio.Event | None = None, max_idle_seconds: float = 1.0) -> None:
        """Loop until ``stop`` is set, woken by every append of the store (``store.appended``) or
        ``wake``. When idle, wait longer and longer (up to ``max_idle_seconds``). Errors are
        logged and retried. Settles what it published before returning."""
        wake = wake or asyncio.Event()
        appended = self.store.appended
        idle = idle_seconds
        while not stop.is_set():
            wake.clear()
            appended.clear()
            try:
                n = await self.run_once()
                self._failing_since = None
            except Exception as e:
                if _being_cancelled():
                    raise asyncio.CancelledError from None  # PyMongo reports a cancellation as a network error
                log.exception("relay round failed; retrying", relay=self.name)
                self._failing_since = self._failing_since or time.monotonic()
                self.last_error = type(e).__name__  # the class only: a driver's message may quote a document
                n = 0
                idle = min(max(idle, 0.5) * 2, 5.0)
            if n:
                idle = idle_seconds
                continue
            timeout = min(idle, self.settle_seconds) if self._unsettled else idle
            await _first_of(stop, wake, appended, timeout=timeout)
            idle = min(idle * 2, max_idle_seconds) if not (wake.is_set() or appended.is_set()) else idle_seconds
        try:
            await self.settle()
        except Exception:
            log.warning("relay could not settle on stop; recovery will publish those commits again", relay=self.name)


def _size(record: OutgoingRecord) -> int:
    return len(record.key) + len(record.value) + sum(len(k) + len(v) for k, v in record.headers)


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
