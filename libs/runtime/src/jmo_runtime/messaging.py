"""Kafka in and out: envelopes on topics, a DLQ for what cannot be parsed, explicit acks.

What arrives on a topic is untrusted. Before a handler sees a message it must be of a bounded
size, carry decodable headers that agree with it, parse as an envelope of a known type whose
payload validates (upcast if older), and be a type the topic accepts, addressed to a stream of the
consuming service (:class:`Boundary`). Whatever fails any of that is refused with a reason code,
never retried: parked in ``<topic>.dlq``, or answered with a rejection event where the sender
waits for one. Only failures of the infrastructure itself wait; everything else has a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from pydantic import ValidationError

from jmo_contracts import Envelope, UnknownMessageType
from jmo_contracts.envelope import HEADER_TYPE
from jmo_contracts.messages import ERASED, message_class, parse_stored
from jmo_eventstore.codec import is_sealed
from jmo_contracts.topics import dlq

from .offsets import OffsetCommitter

#: How long one poll of a consumer waits for records before it asks again (``batch_wait_ms``): a
#: poll returns as soon as a record is there, so this only sets how often an idle consumer wakes.
POLL_WAIT_MS = 500

log = structlog.get_logger(__name__)

EnvelopeHandler = Callable[[Envelope], Awaitable[None]]

#: Headers the DLQ adds to the original message (the value stays byte for byte as received).
DLQ_ERROR = "jmo-dlq-error"
DLQ_REASON = "jmo-dlq-reason"
DLQ_SOURCE = "jmo-dlq-source"
DLQ_GROUP = "jmo-dlq-consumer-group"
DLQ_ORIGINAL_SIZE = "jmo-dlq-original-size"
DLQ_ORIGINAL_SHA256 = "jmo-dlq-original-sha256"

#: Largest message a consumer reads (bytes); larger ones are parked as ``TOO_LARGE``. Commands and
#: events are small (images travel by claim check), so this is generous.
MAX_MESSAGE_BYTES = 128 * 1024
#: Largest value a DLQ copy keeps: a larger original is cut, its size and SHA-256 kept in headers,
#: so parking can never fail for the size that made the message bad.
MAX_DLQ_VALUE_BYTES = 256 * 1024
_MAX_HEADERS = 16
_MAX_HEADER_CHARS = 256
#: Marks a message whose headers could not be read (not UTF-8, or null), set by the lenient parser.
_BAD_HEADERS = "jmo-unreadable-headers"

#: Reason codes of refusals that happen before a handler sees a message.
TOO_LARGE = "TOO_LARGE"
INVALID_HEADERS = "INVALID_HEADERS"
TYPE_NOT_ACCEPTED = "TYPE_NOT_ACCEPTED_ON_TOPIC"
WRONG_STREAM = "STREAM_NOT_OF_THIS_SERVICE"


class Unparseable(Exception):
    """The message is not an envelope of a known type whose payload validates."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse(raw: bytes) -> Envelope:
    """An envelope whose payload validates against its type, or :class:`Unparseable`.

    Never raises anything else, whatever the bytes: a failure of any kind while decoding, validating
    or upcasting (a nesting too deep, a date that overflows, an upcaster meeting a payload it cannot
    read) is a reason to refuse the message, not to retry it.
    """
    envelope = parse_envelope(raw)
    check_payload(envelope)
    return envelope


def parse_envelope(raw: bytes) -> Envelope:
    """The envelope of ``raw``, its payload not yet validated (it may hold sealed personal fields),
    or :class:`Unparseable`."""
    try:
        return Envelope.from_json(raw)
    except ValidationError as e:
        raise Unparseable("INVALID_ENVELOPE", _short(e)) from None
    except Exception as e:  # noqa: BLE001 (anything the bytes can provoke is the message's fault)
        raise Unparseable("INVALID_ENVELOPE", type(e).__name__) from None


def check_payload(envelope: Envelope, *, sealed_ok: bool = False) -> None:
    """Raise :class:`Unparseable` unless the payload validates against its type (upcast if older).

    With ``sealed_ok`` (a consumer that keeps personal fields sealed, unopened: see
    :func:`jmo_runtime.wire.kept_sealed`) a personal field may hold a sealed value; every other
    field is validated as usual."""
    try:
        if sealed_ok:
            _validate_with_sealed_fields(envelope)
        else:
            envelope.open()
    except UnknownMessageType as e:
        raise Unparseable("UNKNOWN_TYPE", str(e)) from None
    except ValidationError as e:
        raise Unparseable("INVALID_PAYLOAD", _short(e)) from None
    except Exception as e:  # noqa: BLE001 (an upcaster that cannot read this payload)
        raise Unparseable("UPCAST_FAILED", type(e).__name__) from None


def _validate_with_sealed_fields(envelope: Envelope) -> None:
    personal = message_class(envelope.type).PERSONAL_FIELDS
    stand_in = {k: (ERASED if k in personal and is_sealed(v) else v) for k, v in envelope.payload.items()}
    parse_stored(envelope.type, envelope.schema_version, stand_in)  # a personal field may read ERASED there: here, "sealed"


@dataclass(frozen=True)
class Boundary:
    """What a consumer may act on from one topic: the trust boundary of SPEC §11.

    ``accepts`` are the type names allowed there (see ``jmo_contracts.catalog.accepted_on``);
    ``stream_kind``, when set, is the kind every message must address (``registration`` for
    ``registration-<id>``), so a command cannot reach another service's streams.
    """

    accepts: frozenset[str]
    stream_kind: str | None = None
    #: The accepted types this consumer acts on (None: all of them). A message whose ``jmo-type``
    #: header names another *accepted* type is passed over unread: it would be read, opened and
    #: validated only to be ignored. A header naming a type not accepted here, or none, gets the
    #: whole admission as before (refused or parked), and so does every type acted on.
    acts_on: frozenset[str] | None = None

    def passes_over(self, declared_type: Any) -> bool:
        """Whether a message declaring ``declared_type`` in its headers is of no concern here."""
        return self.acts_on is not None and isinstance(declared_type, str) and declared_type in self.accepts and declared_type not in self.acts_on

    def refusal(self, envelope: Envelope) -> tuple[str, str] | None:
        """``(reason_code, reason)`` if ``envelope`` must not be acted on here, else ``None``."""
        if envelope.type not in self.accepts:
            return TYPE_NOT_ACCEPTED, f"{envelope.type} is not accepted on this topic"
        if self.stream_kind is not None and envelope.stream_id.rsplit("-", 1)[0] != self.stream_kind:
            return WRONG_STREAM, f"{envelope.type} must address a {self.stream_kind} stream"
        return None


#: Called for a message a :class:`Boundary` refuses, with the reason; without one it is parked.
RefusalHandler = Callable[[Envelope, str, str], Awaitable[None]]


@dataclass(frozen=True)
class Refused:
    """Why a message is not handed to its handler; ``envelope`` when it did parse (and was refused
    by the topic's :class:`Boundary`), so that its sender can be answered."""

    reason: str
    detail: str
    envelope: Envelope | None = None
    #: What its DLQ entry keeps instead of the bytes received (personal data in clear withheld).
    parked_as: bytes | None = None


#: Opens what a received envelope carries sealed (see :mod:`jmo_runtime.wire`): the envelope with
#: its personal fields readable, or why it cannot be acted on.
Opener = Callable[[Envelope], Awaitable["Envelope | Refused"]]


def admit(raw: bytes, headers: Mapping[str, Any], *, boundary: Boundary | None = None, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope | Refused:
    """The envelope a handler may act on, or why not. Pure; never raises, whatever the input.

    In order: the size, the headers (readable; ``jmo-type`` when present naming the envelope's
    type), the envelope and its payload (:func:`parse`), then the topic's ``boundary``. It is
    :func:`receive` then :func:`check`; a consumer whose messages carry sealed fields opens them
    between the two.
    """
    received = receive(raw, headers, max_bytes=max_bytes)
    return received if isinstance(received, Refused) else check(received, headers, boundary=boundary)


def receive(raw: bytes, headers: Mapping[str, Any], *, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope | Refused:
    """The first half of :func:`admit`: the size, readable headers and the envelope (its payload
    unchecked). Pure; never raises."""
    if len(raw) > max_bytes:
        return Refused(TOO_LARGE, f"{len(raw)} bytes, at most {max_bytes}")
    if _BAD_HEADERS in headers:
        return Refused(INVALID_HEADERS, "headers that are not UTF-8 text")
    try:
        return parse_envelope(raw)
    except Unparseable as bad:
        return Refused(bad.reason, bad.detail)


def check(envelope: Envelope, headers: Mapping[str, Any], *, boundary: Boundary | None = None, sealed_ok: bool = False) -> Envelope | Refused:
    """The second half of :func:`admit`: the payload validates (``sealed_ok``: with personal fields
    that may be sealed, see :func:`check_payload`), the ``jmo-type`` header agrees, the topic's
    ``boundary`` accepts it. Pure; never raises."""
    try:
        check_payload(envelope, sealed_ok=sealed_ok)
    except Unparseable as bad:
        return Refused(bad.reason, bad.detail)
    declared = headers.get(HEADER_TYPE)
    if declared is not None and declared != envelope.type:
        return Refused(INVALID_HEADERS, f"header {HEADER_TYPE} does not name the envelope's type")
    refusal = boundary.refusal(envelope) if boundary is not None else None
    return envelope if refusal is None else Refused(*refusal, envelope=envelope)


class ConsumerWatch:
    """Which partitions are busy with a message, and since when: the health check reads it to
    report a partition that does not move (a message waiting for a registry, or a bug)."""

    def __init__(self) -> None:
        self._busy: dict[tuple[str, int], tuple[int, float]] = {}
        self._consumers: list[tuple[Callable[[], Any], Callable[[str, int], int | None]]] = []
        self._positions: dict[tuple[str, int], tuple[int, float]] = {}
        self.handled = 0
        self.refused = 0
        self.passed_over = 0  # accepted types this consumer does not act on (Boundary.acts_on), not read

    def started(self, topic: str, partition: int, offset: int) -> None:
        busy = self._busy.get((topic, partition))
        if busy is None or busy[0] != offset:  # a redelivery of the same message keeps its first start
            self._busy[(topic, partition)] = (offset, time.monotonic())

    def finished(self, topic: str, partition: int) -> None:
        self._busy.pop((topic, partition), None)

    def watch_lag(self, consumers_of: Callable[[], list[Any]], done: Callable[[str, int], int | None] = lambda _t, _p: None) -> None:
        """Also watch the lag of the consumers ``consumers_of()`` returns (aiokafka consumers, once
        started); ``done(topic, partition)`` is the offset after their last finished message, which
        counts as their position while its commit is on its way (see :class:`OffsetCommitter`)."""
        self._consumers.append((consumers_of, done))

    async def lagging(self, longer_than: float) -> list[str]:
        """Partitions with messages waiting whose committed offset has not moved for ``longer_than``
        seconds, as ``topic/partition lag N for Ns`` (a consumer that stopped consuming, whatever the
        reason). One offset look-up per assigned partition: for the health check, not a hot path."""
        now, out = time.monotonic(), []
        for consumers_of, done in self._consumers:
            for consumer in consumers_of():
                if consumer is None or not hasattr(consumer, "highwater"):  # not started, or an in-memory test broker
                    continue
                out += await self._lagging_of(consumer, done, now, longer_than)
        return out

    async def _lagging_of(self, consumer: Any, done: Callable[[str, int], int | None], now: float, longer_than: float) -> list[str]:
        out = []
        for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition)):
            end = consumer.highwater(tp)
            if end is None:
                continue
            # committed, not position(): faststream fetches ahead, so the position runs past what was handled
            position = max(await consumer.committed(tp) or 0, done(tp.topic, tp.partition) or 0)
            lag = end - position
            seen = self._positions.get((tp.topic, tp.partition))
            if seen is None or seen[0] != position or lag <= 0:
                self._positions[(tp.topic, tp.partition)] = (position, now)
            elif now - seen[1] > longer_than:
                out.append(f"{tp.topic}/{tp.partition} lag {lag} for {now - seen[1]:.0f}s")
        return out

    def stalled(self, longer_than: float) -> list[str]:
        """Partitions on one message for more than ``longer_than`` seconds, as ``topic/partition@offset for Ns``."""
        now = time.monotonic()
        return [f"{t}/{p}@{offset} for {now - since:.0f}s" for (t, p), (offset, since) in sorted(self._busy.items()) if now - since > longer_than]


class Unprocessable(Exception):
    """Raised by a handler: this message can never be handled, so park it in the DLQ now.

    For a failure that lies in the message itself or is a permanent refusal by a system it needs
    (a registry answering "malformed request"): redelivering it would only block its partition.
    ``detail`` goes into a DLQ header, so it must carry no personal data.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure that passes by itself, so the message should simply wait.

    The store or the broker unreachable, a timeout, a retriable Kafka error, or an exception whose
    class says ``transient = True`` (the registries' "try later").
    """
    from aiokafka.errors import KafkaError
    from pymongo.errors import ConnectionFailure, PyMongoError

    # not every OSError: a missing file or a permission refused does not pass by itself
    if isinstance(exc, ConnectionFailure | ConnectionError | TimeoutError | socket.gaierror) or getattr(type(exc), "transient", False):
        return True
    if isinstance(exc, PyMongoError) and (exc.has_error_label("RetryableWriteError") or exc.has_error_label("TransientTransactionError")):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


@dataclass
class FailureBudget:
    """How often one message may fail with a non-transient error before it is parked.

    Counted per partition and offset, in this process only: a message that keeps failing the same
    way (a bug, a permanent refusal nobody classified) is redelivered ``attempts`` times, with a
    growing pause, and then goes to the DLQ with reason ``HANDLER_FAILED`` so that the partition
    moves on. Transient failures (:func:`is_transient`) do not count: those messages wait for the
    store, the broker or the registry to come back, however long that takes.
    """

    attempts: int = 5
    first_pause: float = 0.5
    max_pause: float = 5.0
    _failures: dict[tuple[str, int, int], int] = field(default_factory=dict, init=False, repr=False)

    def failed(self, where: tuple[str, int, int]) -> int:
        """Count one more failure of the message at ``where``; returns how many it has had."""
        if where not in self._failures and len(self._failures) >= 1000:
            self._failures.pop(next(iter(self._failures)))  # forget the oldest: only a bound, never reached in practice
        self._failures[where] = self._failures.get(where, 0) + 1
        return self._failures[where]

    def forget(self, where: tuple[str, int, int]) -> None:
        self._failures.pop(where, None)

    def pause_after(self, failures: int) -> float:
        return min(self.first_pause * 2 ** (failures - 1), self.max_pause)


#: How long a partition whose message failed is held before that message is delivered again, when
#: the failure passes by itself (the store or a registry away): a pause instead of a tight loop.
TRANSIENT_PAUSE = 0.2


@dataclass(frozen=True)
class Received:
    """One record of a fetched batch, with its headers decoded (leniently, see :func:`_lenient_batch_parser`)."""

    record: Any
    headers: Mapping[str, Any]

    @property
    def raw(self) -> bytes:
        value = self.record.value
        return value if isinstance(value, bytes) else bytes(value or b"")

    @property
    def partition(self) -> int:
        return int(getattr(self.record, "partition", -1))

    @property
    def offset(self) -> int:
        return int(getattr(self.record, "offset", -1))


class _Progress:
    """Which messages of a partition's batch finished: the committable prefix, the first unfinished."""

    def __init__(self, offsets: list[int]) -> None:
        self._offsets = offsets
        self._finished: set[int] = set()
        self._next = 0  # index of the first message not finished

    def finish(self, offset: int) -> int | None:
        """Record ``offset`` finished; the last offset of the finished prefix when it moved, else None."""
        self._finished.add(offset)
        start = self._next
        while self._next < len(self._offsets) and self._offsets[self._next] in self._finished:
            self._next += 1
        return self._offsets[self._next - 1] if self._next > start else None

    @property
    def first_unfinished(self) -> int | None:
        return self._offsets[self._next] if self._next < len(self._offsets) else None


class _OneStreamAtATime:
    """Per key (one stream), one chain at a time in this process, in the order they asked.

    A rebalance gives a partition back from its committed offset while this process may still be
    handling what it fetched before (a slow message finished in the background): without turns,
    that message would be handled twice at once, and a handler that is idempotent only against
    what is *recorded* (a notice claimed by this very instance) would act twice. With them, the
    second delivery waits for the first and then finds its outcome.
    """

    def __init__(self) -> None:
        self._last: dict[Any, asyncio.Future[None]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: Any) -> Any:
        before = self._last.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last[key] = mine

        def over() -> None:
            mine.set_result(None)
            if self._last.get(key) is mine:
                del self._last[key]

        try:
            if before is not None:
                await asyncio.shield(before)  # always resolved, never failed (see over)
            yield
        finally:
            if before is not None and not before.done():  # cancelled while waiting: those after still wait for the one before
                before.add_done_callback(lambda _: over())
            else:
                over()


def _no_turn(_key: Any) -> contextlib.AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


class _TryAgain(Exception):
    """A message that failed within its budget: delivered again after ``pause`` seconds."""

    def __init__(self, cause: BaseException, pause: float) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
        self.pause = pause


@dataclass(frozen=True)
class Route:
    """Where one topic's messages go in a consumer (see :func:`subscribe_routes`).

    ``boundary`` says which types and streams the topic accepts (and which are passed over
    unread); a refused message goes to ``on_refused`` (a rejection event for its sender), or to the
    topic's DLQ. ``opener`` opens sealed personal fields after the envelope is read and before its
    payload is validated; with ``keeps_sealed`` the handler gets them as they came, sealed (the
    opener then only refuses what is not sealed, :func:`jmo_runtime.wire.kept_sealed`).
    """

    topic: str
    handler: EnvelopeHandler
    boundary: Boundary | None = None
    on_refused: RefusalHandler | None = None
    opener: Opener | None = None
    keeps_sealed: bool = False


class PromptBatchSubscriber(BatchSubscriber):
    """faststream's batch subscriber without the rest after an empty poll.

    faststream's loop asks ``getmany(timeout_ms=batch_timeout_ms)`` and, when that found nothing,
    sleeps ``batch_timeout_ms`` before asking again: a record that arrives during the sleep waits
    for it (up to that long per hop of a journey), and an idle consumer wakes twice per cycle. Here
    the poll alone waits: ``getmany`` returns the moment a record is fetched, so the wait can be long
    (:data:`POLL_WAIT_MS`) and an idle consumer wakes once per wait. Measured back to back on the
    embedded stack (``bench/load.py --rates 10,50``, two pairs): the idle stack 201-232 → 159-168 ms
    of CPU per second, the OTP in the sink at 10/s p50 41-56 → 37-42 ms and p99 85-104 → 72-82 ms,
    no change at 50/s. :func:`subscribe_routes` gives its subscriber this class.
    """

    __slots__ = ()

    async def get_msg(self, consumer: Any) -> tuple[Any, ...]:
        """The records of one poll (none when ``batch_timeout_ms`` passed without one), at once."""
        messages = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
        return tuple(chain(*messages.values()))


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    handler: EnvelopeHandler,
    description: str,
    budget: FailureBudget | None = None,
    boundary: Boundary | None = None,
    on_refused: RefusalHandler | None = None,
    watch: ConsumerWatch | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    batch_records: int = 256,
    batch_wait_ms: int = POLL_WAIT_MS,
    hold_after: float = 1.0,
    opener: Opener | None = None,
    keeps_sealed: bool = False,
    commit_interval: float = 0.2,
    fetch_max_wait_ms: int = 500,
) -> OffsetCommitter:
    """Consume ``topic`` alone as ``group_id`` (documented as ``<topic>:<group_id>``): one
    :class:`Route` of :func:`subscribe_routes`, which says what happens to each message."""
    return subscribe_routes(
        broker, [Route(topic, handler, boundary=boundary, on_refused=on_refused, opener=opener, keeps_sealed=keeps_sealed)], group_id=group_id,
        title=f"{topic}:{group_id}", description=description, budget=budget, watch=watch, max_bytes=max_bytes, batch_records=batch_records,
        batch_wait_ms=batch_wait_ms, hold_after=hold_after, commit_interval=commit_interval, fetch_max_wait_ms=fetch_max_wait_ms,
    )


def subscribe_routes(
    broker: KafkaBroker,
    routes: Iterable[Route],
    *,
    group_id: str,
    title: str | None = None,
    description: str | None = None,
    include_in_schema: bool = True,
    budget: FailureBudget | None = None,
    watch: ConsumerWatch | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    batch_records: int = 256,
    batch_wait_ms: int = POLL_WAIT_MS,
    hold_after: float = 1.0,
    commit_interval: float = 0.2,
    fetch_max_wait_ms: int = 500,
) -> OffsetCommitter:
    """Consume the topics of ``routes`` as ``group_id`` with one consumer: admit each message,
    hand a valid envelope to its topic's handler, park the rest.

    One consumer for all of a process's topics (not one per topic): one fetch loop, one fetch
    request per round for all of them, one offset commit, one group membership; what each topic's
    messages go through is its :class:`Route`.

    Messages come in batches (up to ``batch_records`` per fetch). Within a batch, each partition's
    messages of one key (one stream) are handled one after the other, in order, and those of
    different keys side by side, so their store writes meet in shared round trips. A message's
    offset is committed only after it and every message before it in its partition finished
    (handled, refused or parked), in batches every ``commit_interval`` seconds by the returned
    :class:`OffsetCommitter` (close it before the broker stops, to commit the tail). A message that
    raised (store or broker unavailable) ends its key's chain; its partition seeks back to the first
    unfinished message and is held a moment (``TRANSIENT_PAUSE``, or the budget's growing pause), so
    it is delivered again and nothing after it is committed first; what had finished after it is
    delivered again too, to handlers idempotent by message id. What is too large, has unreadable
    headers or cannot be parsed is published to ``<topic>.dlq`` with the reason in headers, and the
    consumer goes on; so is a message whose handler raised :class:`Unprocessable`, or failed
    non-transiently more often than ``budget`` allows (:class:`FailureBudget`). A message of a type
    or stream its route's boundary refuses goes to its ``on_refused``, or to the DLQ. Headers are
    decoded leniently and the body never by faststream, so nothing about a message can fail before
    this code sees it. An opener's refusal is a refusal like the rest.

    ``batch_wait_ms`` is how long a poll that finds nothing waits for a record before it asks
    again; it returns as soon as one is there, and the consumer never rests between polls
    (:class:`PromptBatchSubscriber`), so an idle hop adds no latency.
    A partition whose part of a batch is not done after ``hold_after`` seconds (a message waiting for
    a registry, or worse) is paused and finished in the background, then resumed: one slow message
    holds its own partition, never the others. A stream is never handled twice at once here: a
    message a rebalance delivers again while it is still in hand waits for that handling to end.
    ``title`` and ``description`` document the consumer (AsyncAPI) unless ``include_in_schema`` is
    false (a consumer of several topics documented per topic elsewhere, :func:`describe_subscription`).
    """
    routes_of = {route.topic: route for route in routes}
    if not routes_of:
        raise ValueError("subscribe_routes: no topic to consume")
    budget = budget or FailureBudget()
    watch = watch or ConsumerWatch()
    committer = OffsetCommitter(interval=commit_interval)
    in_background: set[asyncio.Task[BaseException | None]] = set()  # partitions still on a slow message (held: the loop keeps weak references)
    streams = _OneStreamAtATime()  # a stream delivered again (a rebalance) while still in hand waits its turn

    subscriber = broker.subscriber(
        *routes_of,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,  # no commit per message: the committer commits finished offsets in batches
        listener=committer,
        title=title,
        description=description,
        include_in_schema=include_in_schema,
        parser=_lenient_batch_parser,
        decoder=message_itself,
        batch=True,
        max_records=batch_records,
        batch_timeout_ms=batch_wait_ms,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    if type(subscriber) is BatchSubscriber:
        subscriber.__class__ = PromptBatchSubscriber  # same layout (no slots of its own): only the poll differs
    watch.watch_lag(lambda: [getattr(subscriber, "consumer", None)], committer.done)

    @subscriber
    async def on_batch(msg: Any) -> None:  # the batch itself (``message_itself``), not decoded bodies
        msg.clear_cache()  # it holds itself as its decoded body: let it be freed without the cycle collector
        consumer = getattr(subscriber, "consumer", None)  # None in faststream's in-memory test broker
        partitions: dict[TopicPartition, list[Received]] = {}
        for record, headers in zip(msg.raw_message, msg.batch_headers, strict=True):
            partitions.setdefault(TopicPartition(record.topic, record.partition), []).append(Received(record, headers))
        if consumer is None:  # nothing to pause: every partition is waited for
            failures = await asyncio.gather(*(handle_partition(consumer, tp, received) for tp, received in partitions.items()))
        else:
            tasks = {tp: asyncio.create_task(handle_partition(consumer, tp, received)) for tp, received in partitions.items()}
            await asyncio.wait(tasks.values(), timeout=hold_after)
            for tp, task in tasks.items():
                if not task.done():  # a slow message: the others go on, its partition waits for it
                    _finish_in_background(consumer, tp, task)
            failures = [task.result() for task in tasks.values() if task.done()]
        for failure in failures:
            if failure is not None:
                raise failure  # after every partition was settled: faststream logs it (a test broker raises it to the sender)

    def _finish_in_background(consumer: Any, tp: TopicPartition, task: asyncio.Task[BaseException | None]) -> None:
        """Pause ``tp`` until its part of the batch is done, so the next batches bring the other
        partitions only; then resume it (a failure was sought back and is held by its own pause)."""
        with contextlib.suppress(IllegalStateError):
            consumer.pause(tp)
        in_background.add(task)

        def done(finished: asyncio.Task[BaseException | None]) -> None:
            in_background.discard(finished)
            if finished.cancelled():
                return
            raised = finished.exception()  # a bug in the bookkeeping itself: never leave the partition paused
            failure = raised or finished.result()
            if failure is None or raised is not None:
                _resume(consumer, tp)
            if failure is not None:
                log.warning("a message handled in the background failed; its partition delivers it again", error=type(failure).__name__, topic=tp.topic, partition=tp.partition)

        task.add_done_callback(done)

    async def handle_partition(consumer: Any, tp: TopicPartition, batch: list[Received]) -> BaseException | None:
        """Handle one partition's part of a batch; the first failure, once its partition was sought back."""
        route = routes_of[tp.topic]
        watch.started(tp.topic, tp.partition, batch[0].offset)
        progress = _Progress([r.offset for r in batch])

        def finished(offset: int) -> None:
            last = progress.finish(offset)
            if last is not None:  # every message up to ``last`` finished: committable
                committer.finished(consumer, tp.topic, tp.partition, last)

        chains: dict[Any, list[Received]] = {}
        for received in batch:
            if passed_over(route, received):
                watch.passed_over += 1
                finished(received.offset)
            else:
                chains.setdefault(received.record.key, []).append(received)
        # turns only on a real broker: faststream's in-memory one delivers a publish inline, so a
        # handler publishing to its own topic and key would wait for itself (and there is no rebalance)
        turns = streams.turn if consumer is not None else _no_turn
        outcomes = await asyncio.gather(*(handle_chain(route, chain, finished, turns) for chain in chains.values()))
        if progress.first_unfinished is None:
            watch.finished(tp.topic, tp.partition)
            return None
        failed = [o for o in outcomes if o is not None]
        _deliver_again(consumer, tp, progress.first_unfinished, max(o.pause for o in failed))
        return failed[0].cause  # the partition stays busy for the watch

    async def handle_chain(route: Route, chain: list[Received], finished: Callable[[int], None], turns: Callable[[Any], Any]) -> _TryAgain | None:
        """One key's messages in order, after any chain of that key still in hand here; stops at the
        first that fails (the later ones wait for it)."""
        async with turns((route.topic, chain[0].record.key)):
            for received in chain:
                try:
                    await admit_and_handle(route, received)
                except _TryAgain as again:
                    return again
                except Exception as exc:  # noqa: BLE001 (a transient failure, or the DLQ unreachable)
                    return _TryAgain(exc, TRANSIENT_PAUSE)
                finished(received.offset)
        return None

    def passed_over(route: Route, received: Received) -> bool:
        headers = received.headers
        return route.boundary is not None and route.boundary.passes_over(headers.get(HEADER_TYPE)) and _BAD_HEADERS not in headers and len(received.raw) <= max_bytes

    async def admit_and_handle(route: Route, received: Received) -> None:
        raw, headers, boundary = received.raw, received.headers, route.boundary
        admitted = receive(raw, headers, max_bytes=max_bytes)
        if isinstance(admitted, Envelope) and route.opener is not None:
            admitted = await opened_then_checked(route, admitted, headers, route.opener)
        elif isinstance(admitted, Envelope):
            admitted = check(admitted, headers, boundary=boundary)
        if isinstance(admitted, Envelope):
            handler, envelope = route.handler, admitted
            with structlog.contextvars.bound_contextvars(correlation_id=envelope.correlation_id, message_type=envelope.type, stream_id=envelope.stream_id):
                if await _within_budget(route, lambda: handler(envelope), received):
                    watch.handled += 1
            return
        if admitted.envelope is not None:  # parsed, but not to be acted on here
            watch.refused += 1
            log.warning("message refused at the topic's boundary", reason=admitted.reason, message_type=admitted.envelope.type, topic=route.topic)
            if route.on_refused is not None:
                on_refused, refused, reason, detail = route.on_refused, admitted.envelope, admitted.reason, admitted.detail
                await _within_budget(route, lambda: on_refused(refused, reason, detail), received)  # answering may fail like handling
                return
        await _to_dlq(broker, route.topic, group_id, received, admitted.parked_as if admitted.parked_as is not None else raw, admitted.reason, admitted.detail)

    async def opened_then_checked(route: Route, received: Envelope, headers: Mapping[str, Any], opener: Opener) -> Envelope | Refused:
        opened = await opener(received)  # a key look-up may fail like the store: redelivered
        if isinstance(opened, Envelope):
            return check(opened, headers, boundary=route.boundary, sealed_ok=route.keeps_sealed)
        if opened.parked_as is None:
            return opened
        # refused for what it holds (personal data in clear): any other reason to refuse it comes
        # first, as without an opener, but its DLQ copy is still the one that withholds that data
        other = check(received, headers, boundary=route.boundary)
        return opened if isinstance(other, Envelope) else dataclasses.replace(other, envelope=opened.envelope if other.envelope else None, parked_as=opened.parked_as)

    async def _within_budget(route: Route, call: Callable[[], Awaitable[None]], received: Received) -> bool:
        """Run ``call``; True when it succeeded, False when the message was parked instead."""
        where = (route.topic, received.partition, received.offset)
        try:
            await call()
        except Unprocessable as refused:
            budget.forget(where)
            await _to_dlq(broker, route.topic, group_id, received, received.raw, refused.reason, refused.detail)
            return False
        except Exception as exc:
            if is_transient(exc):
                raise
            failures = budget.failed(where)
            if failures < budget.attempts:
                log.warning("handler failed; the message will be redelivered", error=type(exc).__name__, failures=failures, of=budget.attempts)
                raise _TryAgain(exc, budget.pause_after(failures)) from exc
            budget.forget(where)
            log.error("handler keeps failing; message parked", error=type(exc).__name__, failures=failures)
            await _to_dlq(broker, route.topic, group_id, received, received.raw, "HANDLER_FAILED", _describe(exc))
            return False
        budget.forget(where)
        return True

    return committer


def describe_subscription(broker: KafkaBroker, topic: str, *, group_id: str, description: str) -> None:
    """Declare on ``broker`` (one that documents, never started) a consumer of ``topic`` as
    ``group_id``, documented as ``<topic>:<group_id>`` with ``description``, shaped like the
    consumers :func:`subscribe` makes: for a topic consumed by a consumer of several
    (:func:`subscribe_routes` with ``include_in_schema=False``), which documents none."""

    @broker.subscriber(
        topic, group_id=group_id, title=f"{topic}:{group_id}", description=description, parser=_lenient_batch_parser, decoder=message_itself, batch=True,
        auto_offset_reset="earliest", ack_policy=AckPolicy.MANUAL,
    )
    async def documented_only(msg: Any) -> None:  # pragma: no cover - this broker is never started
        raise RuntimeError(f"{topic}: a documenting broker does not consume")


def _deliver_again(consumer: Any, tp: TopicPartition, offset: int, pause: float) -> None:
    """Seek ``tp`` back to ``offset`` and hold it for ``pause`` seconds: the other partitions go on.
    A partition revoked meanwhile is left alone (its next owner starts from the committed offset)."""
    if consumer is None:
        return
    with contextlib.suppress(IllegalStateError):
        consumer.seek(tp, offset)
        consumer.pause(tp)
        asyncio.get_running_loop().call_later(pause, _resume, consumer, tp)


def _resume(consumer: Any, tp: TopicPartition) -> None:
    with contextlib.suppress(IllegalStateError):
        if tp in consumer.assignment():
            consumer.resume(tp)


async def _lenient_batch_parser(records: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """faststream's Kafka batch parser, after dropping the headers it would fail on (values that are
    null or not UTF-8) from each record; such a record is marked so that it is parked rather than
    lost or retried."""
    return await original(tuple(_readable_headers(record) for record in records))


def _readable_headers(record: Any) -> Any:
    kept: list[tuple[str, bytes]] = []
    unreadable = False
    for key, value in record.headers or ():
        try:
            value.decode("utf-8")
        except (AttributeError, UnicodeDecodeError):
            unreadable = True
            continue
        kept.append((key, value))
    if not unreadable:
        return record
    kept.append((_BAD_HEADERS, b"1"))
    return dataclasses.replace(record, headers=kept)


async def message_itself(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:  # noqa: ARG001
    """A subscriber's decoder that hands it the message itself, never a decoded body.

    faststream would ``json.loads`` each body (a deep nesting raises RecursionError there, before
    any handler), and :func:`parse` reads it with limits anyway. Receiving the message as the
    "body" also spares the per-message dependency injection a ``KafkaMessage`` parameter needs
    (faststream resolves that context field in a worker thread, one thread hop per message);
    the services' brokers run with ``apply_types=False``, and other brokers pass it through as is.
    """
    return msg


async def publish(broker: KafkaBroker, topic: str, envelope: Envelope) -> None:
    """Publish one envelope: key = stream id, headers = type / schema version / correlation id."""
    await broker.publish(envelope.to_json(), topic=topic, key=envelope.stream_id.encode(), headers=envelope.kafka_headers(), correlation_id=envelope.correlation_id)


async def _to_dlq(broker: KafkaBroker, topic: str, group_id: str, received: Received, raw: bytes, reason: str, detail: str) -> None:
    source = f"{topic}/{received.partition}/{received.offset}"
    headers = dlq_headers(received.headers, reason=reason, detail=detail, source=source, group_id=group_id)
    value = raw
    if len(raw) > MAX_DLQ_VALUE_BYTES:  # kept cut, with what identifies the original
        value = raw[:MAX_DLQ_VALUE_BYTES]
        headers.update({DLQ_ORIGINAL_SIZE: str(len(raw)), DLQ_ORIGINAL_SHA256: hashlib.sha256(raw).hexdigest()})
    key = getattr(received.record, "key", None)
    if key is not None and len(key) > _MAX_HEADER_CHARS:
        key = key[:_MAX_HEADER_CHARS]
    await broker.publish(value, topic=dlq(topic), key=key, headers=headers)
    log.warning("message parked in DLQ", reason=reason, source=source, dlq=dlq(topic))


def dlq_headers(original: dict[str, Any] | Iterable[tuple[str, Any]], *, reason: str, detail: str, source: str, group_id: str) -> dict[str, str]:
    """The headers of a DLQ entry: the original's readable ones (bounded in number and size, so the
    entry can always be written) and why, where from and by whom it was parked."""
    items = original.items() if isinstance(original, dict) else original
    kept = {_printable(str(k))[:64]: _printable(v)[:_MAX_HEADER_CHARS] for k, v in list(items)[:_MAX_HEADERS] if isinstance(v, str) and k != _BAD_HEADERS}
    kept.update({DLQ_REASON: reason, DLQ_ERROR: _printable(detail), DLQ_SOURCE: source, DLQ_GROUP: group_id})
    return kept


def _describe(exc: BaseException) -> str:
    # the class, and field locations for a validation error: exception messages may quote personal data
    return f"{type(exc).__name__}: {_short(exc)}" if isinstance(exc, ValidationError) else type(exc).__name__


def _short(e: ValidationError) -> str:
    # field locations and error types only: input values may be personal data
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['type']}" for err in e.errors()[:5])


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:500]
