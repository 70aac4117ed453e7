"""Assembling a service: broker, event store, relay, subscribers and health, started in order.

Nothing connects at import or construction time: the store client and the relay are created in
the application's start-up hook, so building a :class:`Service` (for a test, or to generate the
AsyncAPI document) has no side effects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from faststream.asgi import AsgiFastStream
from faststream.specification import AsyncAPI
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from jmo_contracts import Envelope, Message, derived_id, reply, topics
from jmo_contracts.catalog import accepted_on, envelope_union, stream_kind_of
from jmo_eventstore import EventStore, FieldEncryptionCodec, KeyRing, MongoEventStore, MongoKeyRing, PayloadCodec, PlainCodec

from .decider import Decider, rejected
from .handler import CommandHandler
from .health import health_route
from .messaging import Boundary, ConsumerWatch, EnvelopeHandler, FailureBudget, Opener, Refused, Route, describe_subscription, publish, subscribe_routes
from .offsets import OffsetCommitter
from .quota import ServiceQuota
from .relay import KafkaRecordPublisher, OutgoingRecord, RecordPublisher, Relay
from .schedule import ServiceSchedule
from .settings import ServiceSettings
from .wire import kept_sealed, open_envelope, seal_envelope

log = structlog.get_logger(__name__)


class BrokerRecordPublisher:
    """Relay output through the faststream broker: used with ``TestKafkaBroker`` in component tests."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        for r in records:
            await self._broker.publish(r.value, topic=r.topic, key=r.key, headers={k: v.decode() for k, v in r.headers})


def shared_key_ring(client: AsyncMongoClient, settings: ServiceSettings) -> MongoKeyRing | None:
    """The per-participant data keys every service and the gateway share (``data_keys`` in the
    database JMO_KEYRING_DATABASE, each key wrapped by JMO_DATA_KEY): one key per participant seals
    their data at rest, in read models and on Kafka, so erasing it erases every copy. ``None``
    without a master key."""
    master = settings.master_data_key()
    return None if master is None else MongoKeyRing(client[settings.keyring_database_name()]["data_keys"], master)


def personal_data_codec(database: AsyncDatabase, settings: ServiceSettings) -> PayloadCodec:
    """Personal fields encrypted under the participants' keys of the shared key ring (see
    :func:`shared_key_ring`, on ``database``'s client); payloads as they are when no master key
    is configured."""
    ring = shared_key_ring(database.client, settings)
    return PlainCodec() if ring is None else FieldEncryptionCodec(ring)


@dataclass(frozen=True)
class Subscription:
    """A topic a service reads and what its messages go to (see :meth:`Service.consume`).

    ``topic`` is a base name from :mod:`jmo_contracts.topics`; ``description`` says, for the
    AsyncAPI document, what the service does with it; ``acts_on`` narrows the accepted types to the
    ones ``handler`` acts on (the others are passed over unread); with ``keeps_sealed`` ``handler``
    gets personal fields sealed, as they came.
    """

    topic: str
    handler: EnvelopeHandler
    description: str
    acts_on: Collection[type[Message] | str] | None = None
    keeps_sealed: bool = False

    def boundary(self) -> Boundary:
        """What the topic accepts (the contracts), for streams of which kind, and what is acted on."""
        accepts = accepted_on(self.topic)
        wanted = None if self.acts_on is None else accepts & {t if isinstance(t, str) else t.TYPE for t in self.acts_on}
        return Boundary(accepts, stream_kind_of(self.topic), acts_on=wanted)

    def documented(self, boundary: Boundary) -> str:
        """``description``, with who writes the topic, what is accepted and what is acted on."""
        text = f"{self.description} Written only by `{topics.producer_of(self.topic)}`; accepted here: {', '.join(sorted(boundary.accepts))}; anything else is refused."
        if boundary.acts_on is not None:
            text += f" Acted on: {', '.join(sorted(boundary.acts_on))}; the other accepted types are passed over unread."
        return text


class Service:
    """One microservice: its name, settings, Kafka broker, event store and relay.

    Pass ``store`` (e.g. an in-memory store) to run without MongoDB; pass ``relay_publisher`` to
    route the relay through something other than its own Kafka producer. ``checkpoints`` is
    accepted and ignored (the relay no longer keeps a checkpoint).
    """

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        store: EventStore | None = None,
        relay_publisher: RecordPublisher | None = None,
        checkpoints: object | None = None,
        topic_for: Callable[[str], str] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        credentials = settings.kafka_credentials()
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers, client_id=f"jmo-{name}", enable_idempotence=True, acks="all",
            security=credentials.faststream() if credentials else None,
            apply_types=False,  # subscribers take the message itself (messaging.message_itself): no injection per message
            # faststream's own records go through the service's logging (JSON, masked), and its two
            # lines per consumed message ("Received", "Processed") only at DEBUG: at INFO the log
            # says what was decided, not that a message passed by
            logger=logging.getLogger("jmo.broker"), log_level=logging.DEBUG,
        )
        self.events_topic = settings.topic(topics.events(name))
        self._topic_for = topic_for or (lambda _type: self.events_topic)
        self._store = store
        self._relay_publisher = relay_publisher
        self._mongo: AsyncMongoClient | None = None
        self._relay: Relay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake_relay = asyncio.Event()
        self._handlers: dict[int, CommandHandler] = {}
        self._periodic: list[tuple[str, float, Callable[[], Awaitable[None]]]] = []
        self._periodic_tasks: list[asyncio.Task[None]] = []
        self._resources: list[tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]] = []
        self.watch = ConsumerWatch()
        self._committers: list[OffsetCommitter] = []
        # what the service consumes and publishes, for the AsyncAPI document only (never started):
        # its one consumer reads every topic, the document describes each topic on its own
        self.documentation = KafkaBroker(settings.kafka_bootstrap_servers, security=credentials.faststream() if credentials else None, apply_types=False)
        self.document_publishing(topics.events(name), f"Events of the {name} service's log, relayed in log order; key = stream id.")

    def document_publishing(self, topic: str, description: str) -> None:
        """Declare, for the AsyncAPI document, that this service publishes ``topic`` (via the relay)."""
        self.documentation.publisher(self.settings.topic(topic), schema=envelope_union(topic), title=f"{self.settings.topic(topic)}:publish", description=description)

    # -- wiring ----------------------------------------------------------------------------

    def consume(self, *subscriptions: Subscription) -> None:
        """Consume the topics of ``subscriptions`` in this service's group, all with one consumer
        (one fetch loop, one group membership, one offset commit for every topic), each topic's
        messages going to its own handler; call it once, with every topic the service reads.

        Only the types the contracts accept on a topic reach its handler (and on a commands topic
        only for this service's streams); a refused command is answered with a ``CommandRejected``
        (see :meth:`refuse`), anything else refused is parked in the topic's DLQ. A subscription's
        ``acts_on`` (message classes or type names; those the topic does not carry are ignored)
        narrows what its handler gets to the accepted types it acts on: the others are passed over by
        their ``jmo-type`` header, before being read (an events topic carries every event of its
        producer, and most consumers want a few of them).

        A handler gets the personal fields opened (the participant's key looked up, cached); with
        ``keeps_sealed`` it gets them as they came, sealed, for a handler that only keeps them
        (:class:`jmo_runtime.wire.WireSealed`, opened later with :func:`jmo_runtime.wire.open_kept`):
        no key look-up on arrival. Fields in clear are refused either way.
        """
        if not subscriptions:
            raise ValueError(f"{self.name}: consume() needs at least one subscription")
        group_id = f"jmo-{self.name}"
        routes = []
        for sub in subscriptions:
            topic = self.settings.topic(sub.topic)
            boundary = sub.boundary()
            answers = topics.producer_of(sub.topic) in (topics.GATEWAY, topics.PAYMENT_CHANNEL)  # senders that wait for an answer
            routes.append(Route(
                topic, self._then_wake_relay(sub.handler), boundary=boundary, on_refused=self.refuse if answers else None,
                opener=self._opener(sub.keeps_sealed), keeps_sealed=sub.keeps_sealed and self.settings.data_key is not None,
            ))
            describe_subscription(self.documentation, topic, group_id=group_id, description=sub.documented(boundary))
        committer = subscribe_routes(
            self.broker, routes, group_id=group_id, include_in_schema=False, budget=FailureBudget(attempts=self.settings.handler_attempts),
            watch=self.watch, max_bytes=self.settings.max_message_bytes, batch_records=self.settings.consumer_batch_records,
            batch_wait_ms=self.settings.consumer_batch_wait_ms, commit_interval=self.settings.commit_interval_ms / 1000,
            fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
        )
        self._committers.append(committer)

    def _then_wake_relay(self, handler: EnvelopeHandler) -> EnvelopeHandler:
        async def handle_then_wake_relay(envelope: Envelope) -> None:
            await handler(envelope)
            self._wake_relay.set()

        return handle_then_wake_relay

    def _opener(self, keeps_sealed: bool) -> Opener | None:
        if self.settings.data_key is None:
            return None
        return kept_sealed if keeps_sealed else self._open_received

    async def _open_received(self, envelope: Envelope) -> Envelope | Refused:
        """Open the sealed personal fields of a received message with the store's codec (one key
        ring per service, cached), refusing one in clear (see :mod:`jmo_runtime.wire`)."""
        codec = self.store.codec
        if not isinstance(codec, FieldEncryptionCodec):
            return envelope
        return await open_envelope(codec, envelope)

    @property
    def key_ring(self) -> KeyRing | None:
        """The participants' data keys its log seals with (the shared ring), once started; ``None``
        when personal data is kept in clear. What else the service seals should use this one
        instance: its cache then serves the log, the wire and the service's own stores alike."""
        codec = self.store.codec if self._store is not None else None
        return codec.keys if isinstance(codec, FieldEncryptionCodec) else None

    async def wire_form(self, envelope: Envelope) -> Envelope:
        """``envelope`` as it may travel on Kafka: its personal fields sealed under the participant's
        key (``[erased]`` once erased). For what a service publishes itself rather than through the
        relay (a DLQ copy of a message it received, now opened)."""
        if self.settings.data_key is None:
            return envelope
        return await seal_envelope(self.store.codec, envelope, create=False)

    async def refuse(self, envelope: Envelope, reason_code: str, reason: str) -> None:
        """Answer a command this service must not act on with a ``CommandRejected`` (the sender
        finds it by correlation id). It is logged on a stream of its own, ``refusal-<id>``, derived
        from the command's id, so a redelivered refusal is one decision and no participant's
        stream is touched by what anyone may write."""
        ref = derived_id("refusal", self.name, envelope.message_id)
        answer = reply(envelope, rejected(self.name, envelope.type, envelope.message_id, reason_code, reason), stream_id=f"refusal-{ref}")
        await self.store.append(answer.stream_id, 0, [answer], cause_id=ref)
        self._wake_relay.set()

    def commands(self, decider: Decider[Any], *, clock: Callable[[], datetime] | None = None) -> CommandHandler:
        """The command handler for ``decider`` over this service's store (available once started);
        ``clock`` (UTC now by default) dates its decisions, given on the first call."""
        key = id(decider)
        if key not in self._handlers:
            self._handlers[key] = CommandHandler(self.name, self.store, decider, clock=clock)
        return self._handlers[key]

    def every(self, seconds: float, job: Callable[[], Awaitable[None]], *, name: str) -> None:
        """Run ``job`` every ``seconds`` while the service runs (errors are logged, not fatal)."""
        self._periodic.append((name, seconds, job))

    def resource(self, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]] | None = None) -> None:
        """Start something of the service's own (its use cases, a worker pool...) once the store is
        up, before any message is consumed; stop it (if it needs stopping) after the relay, in
        reverse order of declaration."""
        self._resources.append((start, stop or _nothing_to_stop))

    def schedule(self, collection: str) -> ServiceSchedule:
        """What this service must do later, kept in ``collection`` of its database (one document per
        key, see :mod:`jmo_runtime.schedule`) and shared by its instances; usable once started."""
        schedule = ServiceSchedule(lambda: self.database, collection)
        self.resource(schedule.start)
        return schedule

    def quota(self, collection: str, limit: int, window: timedelta) -> ServiceQuota:
        """At most ``limit`` uses of a key per ``window``, counted in ``collection`` of this service's
        database across all its instances (see :mod:`jmo_runtime.quota`); usable once started."""
        quota = ServiceQuota(lambda: self.database, collection, limit, window)
        self.resource(quota.start)
        return quota

    async def _run_periodic(self, name: str, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while not self._stop.is_set():
            try:
                await job()
            except Exception:
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("periodic job failed", job=name)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=seconds)
            except TimeoutError:
                pass

    async def publish(self, topic: str, envelope: Envelope) -> None:
        """Publish ``envelope`` on ``topic`` now (not through the log), personal fields sealed (:meth:`wire_form`)."""
        await publish(self.broker, self.settings.topic(topic), await self.wire_form(envelope))

    @property
    def database(self) -> AsyncDatabase | None:
        """This service's database once started (``None`` when running on an in-memory store)."""
        return self._mongo[self.settings.database_for(self.name)] if self._mongo is not None else None

    def database_named(self, name: str) -> AsyncDatabase | None:
        """Another database on the store's client once started (e.g. the claim-check blobs); ``None`` in memory."""
        return self._mongo[name] if self._mongo is not None else None

    @property
    def store(self) -> EventStore:
        if self._store is None:
            raise RuntimeError(f"{self.name}: the event store exists once the service has started")
        return self._store

    # -- lifecycle -------------------------------------------------------------------------

    async def start_store(self) -> None:
        if self._store is None:
            self._mongo = AsyncMongoClient(
                self.settings.mongodb_uri,
                serverSelectionTimeoutMS=self.settings.store_timeout_ms,
                socketTimeoutMS=self.settings.store_timeout_ms,
                appname=f"jmo-{self.name}",
            )
            database = self._mongo[self.settings.database_for(self.name)]
            if self.settings.data_key is None:
                log.warning("JMO_DATA_KEY is not set: personal data is stored in clear")
            store = MongoEventStore(database, name="events", codec=personal_data_codec(database, self.settings))
            await store.ensure_indexes()
            self._store = store
        for start, _ in self._resources:
            await start()

    async def start_relay(self) -> None:
        publisher = self._relay_publisher
        if publisher is None:
            kafka = KafkaRecordPublisher(self.settings.kafka_bootstrap_servers, client_id=f"jmo-{self.name}-relay", credentials=self.settings.kafka_credentials())
            await kafka.start()
            publisher = kafka
        self._relay = Relay(
            f"{self.name}-events", self.store, publisher, self._topic_for, batch_size=self.settings.relay_batch_size,
            recover_after=self.settings.relay_recover_after_seconds, recover_every=self.settings.relay_recover_every_seconds, settle_seconds=self.settings.relay_settle_seconds,
        )
        self._stop.clear()
        self._relay_task = asyncio.create_task(self._relay.run(self._stop, self.settings.relay_idle_seconds, wake=self._wake_relay), name=f"{self.name}-relay")
        self._periodic_tasks = [asyncio.create_task(self._run_periodic(*p), name=f"{self.name}-{p[0]}") for p in self._periodic]
        # which outbox is this process's: a survivor's log says which dead instance it took over
        log.info("service started", events_topic=self.events_topic, store_instance=getattr(self.store, "instance", None))

    async def stop(self) -> None:
        for committer in self._committers:  # before the broker stops its consumers (on_shutdown runs first)
            await committer.close()
        self._stop.set()
        if self._relay_task is not None:
            await self._relay_task
        for task in self._periodic_tasks:
            await task
        if self._relay is not None and isinstance(self._relay.publisher, KafkaRecordPublisher):
            await self._relay.publisher.stop()
        for _, stop in reversed(self._resources):
            await stop()
        if self._mongo is not None:
            await self._mongo.close()

    async def relay_once(self) -> int:
        """Run one relay round now (tests use it to flush the log to the broker)."""
        assert self._relay is not None
        return await self._relay.run_once()

    # -- health ----------------------------------------------------------------------------

    async def _check_kafka(self) -> str | None:
        return None if await self.broker.ping(timeout=2.0) else "broker not reachable"

    async def _check_store(self) -> str | None:
        if self._mongo is None:
            return None if self._store is not None else "store not started"
        await self._mongo.admin.command("ping")
        return None

    async def _check_consumers(self) -> str | None:
        stuck = self.watch.stalled(self.settings.stall_seconds) + await self.watch.lagging(self.settings.stall_seconds)
        return None if not stuck else "partition not moving: " + "; ".join(stuck[:5])

    async def _check_relay(self) -> str | None:
        if self._relay_task is None:
            return "relay not started"
        if self._relay_task.done():
            return "relay stopped"
        if self._relay is not None and self._relay.parked:
            return f"relay parked {len(self._relay.parked)} commit(s) too large for Kafka, e.g. {self._relay.parked[-1]}"
        if self._relay is not None and (failing := self._relay.failing_for()) > self.settings.stall_seconds:
            return f"relay rounds failing for {failing:.0f}s ({self._relay.last_error}): appended events are not reaching Kafka"
        return None

    def asgi(self) -> AsgiFastStream:
        """The runnable application: faststream app plus ``GET /health``."""
        checks = {"kafka": self._check_kafka, "store": self._check_store, "relay": self._check_relay, "consumers": self._check_consumers}
        return AsgiFastStream(
            self.broker,
            logger=logging.getLogger("jmo.broker"),  # the app's own records too, through the service's logging
            asgi_routes=[("/health", health_route(self.name, checks))],
            on_startup=[self.start_store],
            after_startup=[self.start_relay],
            on_shutdown=[self.stop],
            specification=self.specification(),
        )

    def specification(self) -> AsyncAPI:
        """The AsyncAPI description of what this service consumes and publishes."""
        return AsyncAPI(self.documentation, title=f"JMO {self.name} service", version="1.0.0", description=(self.__doc__ or "").strip())


async def _nothing_to_stop() -> None:
    return None
