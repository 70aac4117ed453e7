"""Kafka in and out: envelopes on topics, a DLQ for what cannot be parsed, explicit acks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


def subscribe(broker: KafkaBroker, topic: str, *, group_id: str, handler: EnvelopeHandler, description: str) -> None:
    """Consume ``topic`` as ``group_id``: parse, hand valid envelopes to ``handler``, park the rest.

    Offsets are committed only after the handler returned (``AckPolicy.NACK_ON_ERROR``): an
    exception (store or broker unavailable) leaves the message to be delivered again, which is
    safe because handlers are idempotent by message id. What cannot be parsed is published,
    unchanged, to ``<topic>.dlq`` with the reason in headers, and the consumer goes on.
    """

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
            await _to_dlq(broker, topic, group_id, msg, raw, bad)
            return
        with structlog.contextvars.bound_contextvars(correlation_id=envelope.correlation_id, message_type=envelope.type, stream_id=envelope.stream_id):
            await handler(envelope)


async def publish(broker: KafkaBroker, topic: str, envelope: Envelope) -> None:
    """Publish one envelope: key = stream id, headers = type / schema version / correlation id."""
    await broker.publish(envelope.to_json(), topic=topic, key=envelope.stream_id.encode(), headers=envelope.kafka_headers(), correlation_id=envelope.correlation_id)


async def _to_dlq(broker: KafkaBroker, topic: str, group_id: str, msg: Any, raw: bytes, bad: Unparseable) -> None:
    raw_msg = msg.raw_message
    source = f"{topic}/{getattr(raw_msg, 'partition', '?')}/{getattr(raw_msg, 'offset', '?')}"
    headers = {k: v for k, v in (msg.headers or {}).items() if isinstance(v, str)}
    headers.update({DLQ_REASON: bad.reason, DLQ_ERROR: _printable(bad.detail), DLQ_SOURCE: source, DLQ_GROUP: group_id})
    key = getattr(raw_msg, "key", None)
    await broker.publish(raw, topic=dlq(topic), key=key, headers=headers)
    log.warning("message parked in DLQ", reason=bad.reason, source=source, dlq=dlq(topic))


def _short(e: ValidationError) -> str:
    # field locations and error types only: input values may be personal data
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['type']}" for err in e.errors()[:5])


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:500]
