"""Which message types travel on which topic, and typed envelopes to document them.

The owning service of a message type is the contracts module it is defined in; commands go to
that service's commands topic, events to its events topic (``CommandRejected`` on every events
topic), and ``OtpDeliveryRequested`` only to the short-retention OTP delivery topic.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, Union

from pydantic import Field, TypeAdapter, create_model

from . import topics
from .envelope import Envelope
from .messages import Message, registered

_SERVICE_OF_MODULE = {"registration": "registration", "identity": "identity", "biometric": "biometric", "profile_update": "profile-update", "notification": "notification"}
_ONLY_ON = {"OtpDeliveryRequested": topics.OTP_DELIVERY}


def service_of(cls: type[Message]) -> str | None:
    """The service that owns ``cls`` (``None`` for the shared ``CommandRejected``)."""
    return _SERVICE_OF_MODULE.get(cls.__module__.rsplit(".", 1)[1])


def topic_of(cls: type[Message]) -> str | None:
    """The topic a message of ``cls`` is published on (``None``: every events topic)."""
    if cls.TYPE in _ONLY_ON:
        return _ONLY_ON[cls.TYPE]
    service = service_of(cls)
    if service is None:
        return None
    return topics.commands(service) if cls.KIND == "command" else topics.events(service)


def messages_on(topic: str) -> tuple[type[Message], ...]:
    """Every message type that may appear on ``topic`` (a base name, without prefix)."""
    shared_on_events = topic.endswith(".events")
    return tuple(cls for cls in registered().values() if topic_of(cls) == topic or (topic_of(cls) is None and shared_on_events))


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
