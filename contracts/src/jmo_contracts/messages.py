"""Message payload base classes and the registry of stable type names.

Every command and event is a frozen pydantic model registered under a stable type name (never a
Python import path) and a schema version. Older versions stay readable: an upcaster turns a stored
or in-flight payload of version *n* into version *n + 1*, and ``parse_payload`` applies the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

Kind = Literal["command", "event"]
Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

M = TypeVar("M", bound="Message")


class Message(BaseModel):
    """A command or event payload. Subclasses are registered with :func:`message`."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    KIND: ClassVar[Kind]
    #: Names of payload fields that hold personal data (UU PDP); the store encrypts them at rest.
    PERSONAL_FIELDS: ClassVar[frozenset[str]] = frozenset()


class Command(Message):
    """An imperative sent on behalf of a participant; it may be rejected."""

    KIND: ClassVar[Kind] = "command"


class Event(Message):
    """A past-tense fact appended to a service's log and published on its events topic."""

    KIND: ClassVar[Kind] = "event"


class UnknownMessageType(LookupError):
    """The type name (or that version of it) is not part of the contracts."""


_LATEST: dict[str, type[Message]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def message(type_name: str, *, version: int = 1, personal: frozenset[str] | set[str] = frozenset()) -> Callable[[type[M]], type[M]]:
    """Register a payload class under ``type_name`` at ``version`` (the latest one)."""

    def register(cls: type[M]) -> type[M]:
        if type_name in _LATEST and _LATEST[type_name] is not cls:
            raise ValueError(f"message type {type_name!r} registered twice")
        unknown = set(personal) - set(cls.model_fields)
        if unknown:
            raise ValueError(f"{type_name}: personal fields {unknown} are not fields of the model")
        cls.TYPE = type_name
        cls.VERSION = version
        cls.PERSONAL_FIELDS = frozenset(personal)
        _LATEST[type_name] = cls
        return cls

    return register


def upcaster(type_name: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a pure function turning a ``from_version`` payload into ``from_version + 1``."""

    def register(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(type_name, from_version)] = fn
        return fn

    return register


def message_class(type_name: str) -> type[Message]:
    """The current class of ``type_name``."""
    try:
        return _LATEST[type_name]
    except KeyError:
        raise UnknownMessageType(f"unknown message type {type_name!r}") from None


def upcast(type_name: str, version: int, payload: Mapping[str, Any]) -> Payload:
    """Bring a payload of ``version`` up to the current version of its type."""
    current = message_class(type_name).VERSION
    if version > current:
        raise UnknownMessageType(f"{type_name} v{version} is newer than this code (v{current})")
    data = dict(payload)
    for v in range(version, current):
        try:
            data = _UPCASTERS[(type_name, v)](data)
        except KeyError:
            raise UnknownMessageType(f"no upcaster for {type_name} v{v} -> v{v + 1}") from None
    return data


def parse_payload(type_name: str, version: int, payload: Mapping[str, Any]) -> Message:
    """Validate a payload of any known version as the current model of its type."""
    return message_class(type_name).model_validate(upcast(type_name, version, payload))


def registered() -> Mapping[str, type[Message]]:
    """Every registered type name and its current class, sorted by name."""
    return dict(sorted(_LATEST.items()))
