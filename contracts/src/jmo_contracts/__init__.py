"""Shared message contracts of the JMO backend: envelope, commands, events, topics, upcasters."""

from . import audit, biometric, common, identity, notification, profile_update, registration  # noqa: F401  (registers the message types)
from .envelope import Envelope, derived_id, new_id, reply, stream_id
from .messages import ERASED, Command, Event, Message, UnknownMessageType, erased_fields, message_class, parse_payload, parse_stored, registered

__all__ = [
    "Command",
    "Envelope",
    "Event",
    "Message",
    "UnknownMessageType",
    "message_class",
    "derived_id",
    "new_id",
    "parse_payload",
    "parse_stored",
    "erased_fields",
    "ERASED",
    "registered",
    "reply",
    "stream_id",
]
