"""Which message types travel on which topic — the trust boundary — and typed envelopes to document them.

The owning service of a message type is the contracts module it is defined in. The gateway's
commands go to that service's commands topic, events to its events topic (``CommandRejected`` on
every events topic), ``OtpDeliveryRequested`` only to the short-retention OTP delivery topic and
``RecordContributionPayment`` only to the payment channel's topic. Scheduler commands (expiry,
retries) never travel on Kafka: the owning service issues them to itself. A consumer acts only on
the types :func:`accepted_on` its topic and, on a commands topic, only on streams of that topic's
service (:func:`stream_kind_of`); everything else is refused with a reason.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, Union

from pydantic import Field, TypeAdapter, create_model

from . import topics
from .envelope import Envelope
from .messages import Message, registered

_SERVICE_OF_MODULE = {"registration": "registration", "identity": "identity", "biometric": "biometric", "profile_update": "profile-update", "notification": "notification"}
_ONLY_ON = {"OtpDeliveryRequested": topics.OTP_DELIVERY, "RecordContributionPayment": topics.PAYMENTS}
#: Commands a service issues to itself from its scheduler; accepted on no topic.
SCHEDULER_COMMANDS = frozenset({"ExpireRegistration", "RetryEmployerMembershipCheck", "ExpireProfileUpdate"})
#: Contract modules whose messages are kept in a log of their own and never travel on Kafka.
_LOCAL_MODULES = frozenset({"audit"})


def service_of(cls: type[Message]) -> str | None:
    """The service that owns ``cls`` (``None`` for the shared ``CommandRejected``)."""
    return _SERVICE_OF_MODULE.get(cls.__module__.rsplit(".", 1)[1])


def topic_of(cls: type[Message]) -> str | None:
    """The topic a message of ``cls`` is published on (``None``: every events topic, or — for a
    scheduler command, see :func:`travels` — none)."""
    if cls.TYPE in _ONLY_ON:
        return _ONLY_ON[cls.TYPE]
    service = service_of(cls)
    if service is None:
        return None
    return topics.commands(service) if cls.KIND == "command" else topics.events(service)


def travels(cls: type[Message]) -> bool:
    """Whether messages of ``cls`` ever travel on Kafka (scheduler commands do not)."""
    return cls.TYPE not in SCHEDULER_COMMANDS and cls.__module__.rsplit(".", 1)[1] not in _LOCAL_MODULES


def messages_on(topic: str) -> tuple[type[Message], ...]:
    """Every message type that may appear on ``topic`` (a base name, without prefix)."""
    shared_on_events = topic.endswith(".events")
    return tuple(cls for cls in registered().values() if travels(cls) and (topic_of(cls) == topic or (topic_of(cls) is None and shared_on_events)))


@cache
def accepted_on(topic: str) -> frozenset[str]:
    """The type names a consumer of ``topic`` (a base name) may act on; anything else is refused."""
    return frozenset(cls.TYPE for cls in messages_on(topic))


def stream_kind_of(topic: str) -> str | None:
    """The stream kind every message on a commands or payments topic must address (``registration``
    for ``jmo.registration.commands``): a command for another service's stream is refused.
    ``None`` for events topics, whose consumers map events to their own streams."""
    if topic == topics.PAYMENTS:
        return "registration"
    for service in topics.SERVICES:
        if topic == topics.commands(service):
            return service
    return None


@cache
def typed_envelope(cls: type[Message]) -> type[Envelope]:
    """An envelope model whose ``type`` is fixed and whose payload is ``cls``: for documentation."""
    return create_model(  # type: ignore[no-any-return, call-overload]
        f"{cls.TYPE}Envelope",
        __base__=Envelope,
        __doc__=f"{cls.TYPE} v{cls.VERSION} ({cls.KIND}). {(cls.__doc__ or '').strip()}",
        type=(Literal[cls.TYPE], Field(description="Stable message type name.")),
        schema_version=(Literal[cls.VERSION], Field(description="Payload schema version.")),
        payload=(cls, Field(description=(cls.__doc__ or "").strip())),
    )


def envelope_union(topic: str) -> Any:
    """``Union`` of the typed envelopes on ``topic``."""
    models = tuple(typed_envelope(cls) for cls in messages_on(topic))
    if not models:
        raise LookupError(f"no message type is published on {topic}")
    return Union[models] if len(models) > 1 else models[0]  # noqa: UP007 (a runtime union of classes)


def envelope_schemas(topic: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of the envelopes on ``topic``: a ``oneOf`` and its component definitions."""
    schema = TypeAdapter(envelope_union(topic)).json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return schema, defs
