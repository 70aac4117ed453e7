"""Kafka in and out: envelopes on topics, a DLQ for what cannot be parsed, explicit acks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from jmo_contracts import Envelope, UnknownMessageType
from jmo_contracts.topics import dlq

log = structlog.get_logger(__name__)

EnvelopeHandler = Callable[[Envelope], Awaitable[None]]

#: Headers the DLQ adds to the original message (the value stays byte for byte as received).
DLQ_ERROR = "jmo-dlq-error"
DLQ_REASON = "jmo-dlq-reason"
DLQ_SOURCE = "jmo-dlq-source"
DLQ_GROUP = "jmo-dlq-consumer-group"


class Unparseable(Exception):
    """The message is not an envelope of a known type whose payload validates."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse(raw: bytes) -> Envelope:
    """An envelope whose payload validates against its type, or :class:`Unparseable`."""
    try:
        envelope = Envelope.from_json(raw)
    except ValidationError as e:
        raise Unparseable("INVALID_ENVELOPE", _short(e)) from None
    try:
        envelope.open()
    except UnknownMessageType as e:
        raise Unparseable("UNKNOWN_TYPE", str(e)) from None
    except ValidationError as e:
        raise Unparseable("INVALID_PAYLOAD", _short(e)) from None
    return envelope


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


def subscribe(broker: KafkaBroker, topic: str, *, group_id: str, handler: EnvelopeHandler, description: str, budget: FailureBudget | None = None) -> None:
    """Consume ``topic`` as ``group_id``: parse, hand valid envelopes to ``handler``, park the rest.

    Offsets are committed only after the handler returned (``AckPolicy.NACK_ON_ERROR``): an
    exception (store or broker unavailable) leaves the message to be delivered again, which is
    safe because handlers are idempotent by message id. What cannot be parsed is published,
    unchanged, to ``<topic>.dlq`` with the reason in headers, and the consumer goes on; so is a
    message whose handler raised :class:`Unprocessable`, or failed non-transiently more often than
    ``budget`` allows (:class:`FailureBudget`).
    """
    budget = budget or FailureBudget()

    @broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{topic}:{group_id}",
        description=description,
    )
    async def on_message(msg: KafkaMessage) -> None:
        raw = msg.body if isinstance(msg.body, bytes) else bytes(msg.body)
        try:
            envelope = parse(raw)
        except Unparseable as bad:
            await _to_dlq(broker, topic, group_id, msg, raw, bad.reason, bad.detail)
            return
        where = (topic, getattr(msg.raw_message, "partition", -1), getattr(msg.raw_message, "offset", -1))
        with structlog.contextvars.bound_contextvars(correlation_id=envelope.correlation_id, message_type=envelope.type, stream_id=envelope.stream_id):
            try:
                await handler(envelope)
            except Unprocessable as refused:
                budget.forget(where)
                await _to_dlq(broker, topic, group_id, msg, raw, refused.reason, refused.detail)
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                failures = budget.failed(where)
                if failures < budget.attempts:
                    log.warning("handler failed; the message will be redelivered", error=type(exc).__name__, failures=failures, of=budget.attempts)
                    await asyncio.sleep(budget.pause_after(failures))
                    raise
                budget.forget(where)
                log.error("handler keeps failing; message parked", error=type(exc).__name__, failures=failures)
                await _to_dlq(broker, topic, group_id, msg, raw, "HANDLER_FAILED", _describe(exc))
                return
            budget.forget(where)


async def publish(broker: KafkaBroker, topic: str, envelope: Envelope) -> None:
    """Publish one envelope: key = stream id, headers = type / schema version / correlation id."""
    await broker.publish(envelope.to_json(), topic=topic, key=envelope.stream_id.encode(), headers=envelope.kafka_headers(), correlation_id=envelope.correlation_id)


async def _to_dlq(broker: KafkaBroker, topic: str, group_id: str, msg: Any, raw: bytes, reason: str, detail: str) -> None:
    raw_msg = msg.raw_message
    source = f"{topic}/{getattr(raw_msg, 'partition', '?')}/{getattr(raw_msg, 'offset', '?')}"
    headers = {k: v for k, v in (msg.headers or {}).items() if isinstance(v, str)}
    headers.update({DLQ_REASON: reason, DLQ_ERROR: _printable(detail), DLQ_SOURCE: source, DLQ_GROUP: group_id})
    key = getattr(raw_msg, "key", None)
    await broker.publish(raw, topic=dlq(topic), key=key, headers=headers)
    log.warning("message parked in DLQ", reason=reason, source=source, dlq=dlq(topic))


def _describe(exc: BaseException) -> str:
    # the class, and field locations for a validation error: exception messages may quote personal data
    return f"{type(exc).__name__}: {_short(exc)}" if isinstance(exc, ValidationError) else type(exc).__name__


def _short(e: ValidationError) -> str:
    # field locations and error types only: input values may be personal data
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['type']}" for err in e.errors()[:5])


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:500]
