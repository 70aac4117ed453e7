"""Shared message contracts of the JMO backend: envelope, commands, events, topics, upcasters."""

from . import audit, biometric, common, identity, notification, profile_update, registration  # noqa: F401  (registers the message types)
from .envelope import Envelope, derived_id, new_id, reply, stream_id
from .messages import Command, Event, Message, UnknownMessageType, message_class, parse_payload, registered

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
    "registered",
    "reply",
    "stream_id",
]
