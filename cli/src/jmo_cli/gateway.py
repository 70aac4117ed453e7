"""The mobile gateway's side of Kafka: publish a command (its personal fields sealed), then follow its journey by correlation id."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, message_class, new_id, stream_id, topics
from jmo_contracts.catalog import service_of, topic_of
from jmo_eventstore import FieldEncryptionCodec
from jmo_runtime.service import shared_key_ring
from jmo_runtime.settings import ServiceSettings
from jmo_runtime.wire import open_envelope, seal_envelope

#: Journeys whose events a :class:`Gateway` keeps, read while it followed another one (the most recent).
KEPT_JOURNEYS = 10_000


def service_for(command_type: str) -> str:
    """The service whose commands topic takes ``command_type``."""
    cls = message_class(command_type)
    service = service_of(cls)
    if cls.KIND != "command" or service is None:
        raise ValueError(f"{command_type} is not a command")
    return service


def default_stream(command_type: str, message: Any) -> str:
    """The stream a command goes to when none is given: a session's stream for the session-scoped
    services, the participant's for identity, a new one (a new registration) otherwise."""
    service = service_for(command_type)
    if service in ("profile-update", "biometric") and getattr(message, "session_id", None):
        return f"{service}-{message.session_id}"
    if service == "identity" and getattr(message, "participant_id", None):
        return f"identity-{message.participant_id}"
    return stream_id(service)


def command_envelope(command_type: str, data: Mapping[str, Any], *, correlation_id: str | None = None, stream: str | None = None) -> Envelope:
    """Validate ``data`` as ``command_type`` and wrap it as the gateway would."""
    message = message_class(command_type).model_validate(dict(data))
    return Envelope.wrap(message, stream_id=stream or default_stream(command_type, message), correlation_id=correlation_id or new_id())


class Gateway:
    """A Kafka producer and a follower of the events topics, as the mobile gateway uses them.

    With ``sealing`` (settings holding JMO_DATA_KEY, the store's URI and the key ring's database,
    as the services have them) the gateway seals the personal fields of every command it sends
    under the participant's key in the shared key ring, as the services' logs and relays do, and
    opens those of the events it follows: nothing personal crosses Kafka in clear. Services with
    a master key refuse a command whose personal fields arrive in clear (``PERSONAL_DATA_IN_CLEAR``).

    ``kafka_options(principal)`` gives the aiokafka options (``security_protocol``, ``sasl_*``) that
    authenticate as ``principal``; without it (or on a cluster without security) everything is
    PLAINTEXT. Commands go out as the ``gateway`` principal, which reads the events topics too. A
    record for a topic the gateway does not write (a payment confirmation, or a test's injected
    message) goes out as that topic's one producer (``topics.producer_of``), through a producer of its
    own: as the payment channel would send it. The broker refuses it unless that principal's
    credentials are given.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        kafka_options: Callable[[str], Mapping[str, Any]] | None = None,
        sealing: ServiceSettings | None = None,
    ) -> None:
        self.bootstrap = bootstrap_servers
        self.prefix = topic_prefix
        self.sealing = sealing
        self._options_for = kafka_options or (lambda _principal: {})
        self._producers: dict[str, AIOKafkaProducer] = {}
        self._starting = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._backlog: deque[Any] = deque()  # records fetched and not looked at yet (see events)
        self._others: OrderedDict[str, list[bytes]] = OrderedDict()  # events read while following another journey, by correlation id
        self._mongo: AsyncMongoClient | None = None
        self._codec: FieldEncryptionCodec | None = None

    @classmethod
    def from_env(cls, bootstrap_servers: str, *, topic_prefix: str = "") -> Gateway:
        """Each principal's password from JMO_KAFKA_PASSWORD_<PRINCIPAL> (see jmo_runtime.kafka_security);
        sealing with the key ring of MONGODB_URI / JMO_KEYRING_DATABASE under JMO_DATA_KEY when that is set."""
        from jmo_runtime.kafka_security import client_options, credentials_from_env

        settings = ServiceSettings()
        return cls(
            bootstrap_servers, topic_prefix=topic_prefix, kafka_options=lambda p: client_options(credentials_from_env(p)),
            sealing=settings if settings.data_key is not None else None,
        )

    async def __aenter__(self) -> Gateway:
        if self.sealing is not None and self.sealing.data_key is not None:
            self._mongo = AsyncMongoClient(self.sealing.mongodb_uri, serverSelectionTimeoutMS=self.sealing.store_timeout_ms, appname="jmo-gateway")
            ring = shared_key_ring(self._mongo, self.sealing)
            self._codec = FieldEncryptionCodec(ring) if ring is not None else None
        await self._producer(topics.GATEWAY)
        await self._follow([topics.events(s) for s in topics.SERVICES])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for producer in self._producers.values():
            await producer.stop()
        self._producers.clear()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._mongo is not None:
            await self._mongo.close()
            self._mongo, self._codec = None, None

    async def sealed(self, envelope: Envelope) -> Envelope:
        """``envelope`` as the gateway puts it on Kafka: personal fields sealed (when sealing)."""
        return envelope if self._codec is None else await seal_envelope(self._codec, envelope)

    async def opened(self, envelope: Envelope) -> Envelope:
        """``envelope`` read from Kafka with its personal fields opened (when sealing; as it is if
        they do not open, e.g. the participant was erased)."""
        if self._codec is None:
            return envelope
        opened = await open_envelope(self._codec, envelope)
        return opened if isinstance(opened, Envelope) else envelope

    async def _producer(self, principal: str) -> AIOKafkaProducer:
        async with self._starting:
            if principal not in self._producers:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id=f"jmo-{principal}", enable_idempotence=True, acks="all", **self._options_for(principal)
                )
                await producer.start()
                self._producers[principal] = producer
            return self._producers[principal]

    async def _producer_for(self, topic: str) -> AIOKafkaProducer:
        try:
            principal = topics.producer_of(topic)
        except ValueError:  # not a topic of the system (a test's own): as the gateway
            principal = topics.GATEWAY
        return await self._producer(principal)

    async def _follow(self, names: Iterable[str]) -> None:
        """Start reading the events topics from their current end (before anything is sent)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, client_id="jmo-gateway-follower", **self._options_for(topics.GATEWAY))
        await consumer.start()
        parts = []
        for name in names:
            for p in consumer.partitions_for_topic(self.prefix + name) or await _partitions(consumer, self.prefix + name):
                parts.append(TopicPartition(self.prefix + name, p))
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        self._consumer = consumer

    async def send(self, envelope: Envelope, *, topic: str | None = None) -> None:
        """Publish a command to its topic (the commands topic of its service; a payment confirmation to
        the payment channel's topic): key = stream id, headers = type / schema version / correlation id."""
        name = topic or topic_of(message_class(envelope.type)) or topics.commands(service_for(envelope.type))
        headers = [(k, v.encode()) for k, v in envelope.kafka_headers().items()]
        wire = await self.sealed(envelope)
        await (await self._producer_for(name)).send_and_wait(self.prefix + name, wire.to_json(), key=envelope.stream_id.encode(), headers=headers)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None, headers: list[tuple[str, bytes | None]] | None = None) -> tuple[int, int]:
        """Publish bytes as they are, as the topic's producer (tests of what consumers make of bad
        input); returns (partition, offset)."""
        sent = await (await self._producer_for(topic)).send_and_wait(self.prefix + topic, value, key=key, headers=headers)  # type: ignore[arg-type]
        return sent.partition, sent.offset

    async def events(self, correlation_id: str, *, wait: float) -> AsyncIterator[Envelope]:
        """Every event carrying ``correlation_id``, as it arrives, for ``wait`` seconds.

        A caller that stops early (:meth:`until`, at the event it waited for) leaves the records
        fetched with that event for the next call: one fetch may bring two events of a journey at
        once (a SelfieMatched and the SelfieVerificationRecorded it caused, from two topics), and the
        second must still be seen by whoever waits for it next. Events of other journeys read
        meanwhile are kept for whoever follows those next (the most recent :data:`KEPT_JOURNEYS`
        journeys), so several journeys can be followed through one gateway, one after the other or
        side by side."""
        assert self._consumer is not None
        deadline = time.monotonic() + wait
        kept = self._others.pop(correlation_id, [])
        while kept:
            yield await self.opened(Envelope.from_json(kept.pop(0)))
        while True:
            while self._backlog:
                value = self._backlog.popleft().value
                envelope = Envelope.from_json(value)
                if envelope.correlation_id == correlation_id:
                    yield await self.opened(envelope)
                else:
                    self._keep(envelope.correlation_id, value)
            if (left := deadline - time.monotonic()) <= 0:
                return
            for records in (await self._consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))).values():
                self._backlog.extend(records)

    def _keep(self, correlation_id: str, value: bytes) -> None:
        self._others.setdefault(correlation_id, []).append(value)
        self._others.move_to_end(correlation_id)
        if len(self._others) > KEPT_JOURNEYS:
            self._others.popitem(last=False)

    async def until(self, correlation_id: str, types: set[str], *, timeout: float) -> list[Envelope]:
        """Collect the journey's events until one of ``types`` arrives (or ``timeout``)."""
        seen: list[Envelope] = []
        async for e in self.events(correlation_id, wait=timeout):
            seen.append(e)
            if e.type in types:
                break
        return seen


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()  # noqa: SLF001 (no public refresh in aiokafka)
        if parts := consumer.partitions_for_topic(topic):
            return parts
        await asyncio.sleep(0.1)
    raise LookupError(f"topic {topic} does not exist")


async def upload_selfie(mongodb_uri: str, blob_database: str, data: bytes) -> dict[str, Any]:
    """Claim check, as the gateway does it: put the image in GridFS next to the event store and return the
    ``SubmitSelfie`` fields that describe it (blob_id, sha256, content_type by content, size_bytes)."""
    import hashlib

    from pymongo import AsyncMongoClient

    from jmo_biometric.adapters.blobs import GridFsSelfieBlobs
    from jmo_biometric.adapters.engine import sniff_content_type

    content_type = sniff_content_type(data)
    if content_type is None:
        raise ValueError("the image is neither JPEG nor PNG (by content)")
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000)
    try:
        blob_id = await GridFsSelfieBlobs(client[blob_database]).put(data, content_type=content_type)
    finally:
        await client.close()
    return {"blob_id": blob_id, "sha256": hashlib.sha256(data).hexdigest(), "content_type": content_type, "size_bytes": len(data)}
