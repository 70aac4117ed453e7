"""The envelope every command and event travels in, on Kafka and in the event log."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from .messages import YEARS, Message, parse_payload

STREAM_ID_PATTERN = r"^[a-z][a-z0-9-]*-[0-9a-f]{32}$"

#: Kafka header names. Values are printable UTF-8 and never personal data.
HEADER_TYPE = "jmo-type"
HEADER_SCHEMA_VERSION = "jmo-schema-version"
HEADER_CORRELATION_ID = "jmo-correlation-id"
HEADER_CONTENT_TYPE = "content-type"


def new_id() -> str:
    """A fresh random identifier (UUID4 as 32 hex digits)."""
    return uuid.uuid4().hex


def derived_id(*parts: str) -> str:
    """A deterministic identifier (32 hex digits) from ``parts``: every process and every retry that
    derives it from the same parts gets the same id, so what it names is decided once (an expiry,
    a retry, a refusal). ``sha256(":".join(parts))``, cut to 32 digits."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:32]


def stream_id(kind: str, ref: str | None = None) -> str:
    """A stream reference such as ``registration-<32 hex>``; used as Kafka key, never PII."""
    return f"{kind}-{ref or new_id()}"


class Envelope(BaseModel):
    """One command or event with the metadata needed to route, deduplicate, trace and upcast it.

    ``message_id`` is the idempotency key: a consumer that sees it twice must not act twice.
    ``correlation_id`` is shared by every message of one user journey; ``causation_id`` is the
    ``message_id`` of the message that caused this one. ``stream_id`` names the stream (and is the
    Kafka key), so one participant's messages stay in order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(default_factory=new_id, pattern=r"^[0-9a-f]{32}$", description="Unique id of this message; the idempotency key.", examples=["6f1c2a9e0d4b4c1f9a7e3b2d1c0f9e8a"])
    type: str = Field(description="Stable message type name.", examples=["RegisterParticipant"])
    schema_version: int = Field(ge=1, description="Version of the payload schema of this type.", examples=[1])
    occurred_at: AwareDatetime = Field(description="When the command was issued or the event happened (UTC).", examples=["2026-11-21T08:30:00Z"])
    correlation_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="One id per user journey, shared by all its messages.", examples=["0a1b2c3d4e5f60718293a4b5c6d7e8f9"])
    causation_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$", description="message_id of the message that caused this one.", examples=[None])
    stream_id: str = Field(pattern=STREAM_ID_PATTERN, description="Stream (aggregate) reference; also the Kafka key. Never personal data.", examples=["registration-8d3c6c1e5f2a4b7d9e0f1a2b3c4d5e6f"])
    payload: dict[str, Any] = Field(description="The message body, shaped by the JSON Schema of `type` at `schema_version`.")

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.year not in YEARS:  # also keeps astimezone from overflowing (0001-01-01T00:00+14:00)
            raise ValueError(f"year {value.year} is outside {YEARS.start}–{YEARS.stop - 1}")
        return value.astimezone(UTC)

    @classmethod
    def wrap(
        cls,
        message: Message,
        *,
        stream_id: str,
        correlation_id: str,
        causation_id: str | None = None,
        message_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        """Put ``message`` in an envelope."""
        return cls(
            message_id=message_id or new_id(),
            type=message.TYPE,
            schema_version=message.VERSION,
            occurred_at=occurred_at or datetime.now(UTC),
            correlation_id=correlation_id,
            causation_id=causation_id,
            stream_id=stream_id,
            payload=message.model_dump(mode="json"),
        )

    def open(self) -> Message:
        """The payload as the current model of its type (upcast from older versions)."""
        return parse_payload(self.type, self.schema_version, self.payload)

    def kafka_headers(self) -> dict[str, str]:
        """Headers for Kafka: type, schema version and correlation id; no personal data."""
        return {
            HEADER_TYPE: self.type,
            HEADER_SCHEMA_VERSION: str(self.schema_version),
            HEADER_CORRELATION_ID: self.correlation_id,
            HEADER_CONTENT_TYPE: "application/json",
        }

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)


def reply(to: Envelope, message: Message, *, stream_id: str | None = None, occurred_at: datetime | None = None) -> Envelope:
    """An envelope caused by ``to``: same correlation id, causation id = ``to.message_id``."""
    return Envelope.wrap(
        message,
        stream_id=stream_id or to.stream_id,
        correlation_id=to.correlation_id,
        causation_id=to.message_id,
        occurred_at=occurred_at,
    )


def dump_payload(message: Message) -> dict[str, Any]:
    return message.model_dump(mode="json")
