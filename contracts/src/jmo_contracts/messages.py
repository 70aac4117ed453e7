"""Message payload base classes and the registry of stable type names.

Every command and event is a frozen pydantic model registered under a stable type name (never a
Python import path) and a schema version. Older versions stay readable: an upcaster turns a stored
or in-flight payload of version *n* into version *n + 1*, and ``parse_payload`` applies the chain.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from datetime import date, datetime

from annotated_types import Ge, Gt, Le, Lt, MaxLen
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, create_model

Kind = Literal["command", "event"]
Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

M = TypeVar("M", bound="Message")


#: Bounds given to every text field and list that does not declare its own (SPEC §11: every field
#: has a bounded size), so that no single message can grow past what Kafka and the store accept.
MAX_TEXT = 256
MAX_ITEMS = 32
#: Numbers (amounts in rupiah, counts, distances) stay well inside what JSON readers hold exactly.
MAX_NUMBER = 10**12
#: Dates and instants outside these years are refused (they overflow time zone arithmetic, or are typos).
YEARS = range(1900, 2201)


#: Characters free text may not hold: controls (C0, DEL, C1) and the bidirectional overrides and
#: isolates that make text display in another order than it is stored (a name, an account number).
_FORBIDDEN_IN_TEXT = frozenset(
    [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)]
    + [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)] + ["\u200e", "\u200f", "\u061c"]
)


def _sane_year(value: date) -> date:
    if value.year not in YEARS:
        raise ValueError(f"year {value.year} is outside {YEARS.start}–{YEARS.stop - 1}")
    return value


def _plain_text(value: Any) -> Any:
    if isinstance(value, str) and not _FORBIDDEN_IN_TEXT.isdisjoint(value):
        raise ValueError("text holds control or bidirectional-override characters")
    return value


def _is_text(annotation: Any) -> bool:
    """``str`` or ``str | None``."""
    return annotation is str or (get_origin(annotation) in (Union, types.UnionType) and set(get_args(annotation)) == {str, type(None)})


def _bounded(annotation: Any, metadata: Sequence[Any] = (), *, size: bool = True) -> Any:
    """``annotation`` made safe where it is not plain text (text fields get their bounds as field
    metadata, see :func:`bound_fields`): every ``str`` inside it plain text of at most
    :data:`MAX_TEXT` characters, every list at most :data:`MAX_ITEMS` items, numbers within
    ±:data:`MAX_NUMBER` and dates within :data:`YEARS`. Bounds the field declares itself (in
    ``metadata``; ``size=False`` when it has its own length) are kept."""
    origin = get_origin(annotation)
    if annotation is str:
        return Annotated[str, MaxLen(MAX_TEXT), AfterValidator(_plain_text)]
    if annotation in (int, float):
        bounds = [] if any(isinstance(m, Le | Lt) for m in metadata) else [Le(MAX_NUMBER)]
        bounds += [] if any(isinstance(m, Ge | Gt) for m in metadata) else [Ge(-MAX_NUMBER)]
        return Annotated[annotation, *bounds] if bounds else annotation
    if annotation in (date, datetime, AwareDatetime):
        return Annotated[annotation, AfterValidator(_sane_year)]
    if origin is Annotated:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[tuple(_bounded(a, metadata, size=size) for a in get_args(annotation))]  # noqa: UP007 (built at run time)
    if origin in (list, tuple, set, frozenset):
        args = get_args(annotation)
        inner = origin[tuple(_bounded(a) for a in args)] if origin is tuple else origin[_bounded(args[0])]  # type: ignore[index]
        return inner if origin is tuple or not size else Annotated[inner, MaxLen(MAX_ITEMS)]
    return annotation


def _has_own_size(metadata: Sequence[Any]) -> bool:
    return any(isinstance(m, MaxLen) or getattr(m, "max_length", None) is not None or getattr(m, "pattern", None) is not None for m in metadata)


def bound_fields(cls: type[BaseModel]) -> None:
    """Give every field of ``cls`` the default bounds it does not declare itself (see :func:`_bounded`)."""
    changed = False
    for field in cls.model_fields.values():
        own_size = _has_own_size(field.metadata)
        if _is_text(field.annotation):
            field.metadata.extend(([] if own_size else [MaxLen(MAX_TEXT)]) + [AfterValidator(_plain_text)])
            changed = True
            continue
        bounded = _bounded(field.annotation, field.metadata, size=not own_size)
        if bounded != field.annotation:
            field.annotation = bounded
            changed = True
    if changed:
        cls.model_rebuild(force=True)


class Part(BaseModel):
    """A structured part of a payload (an address, a placement...): frozen, strict, bounded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        bound_fields(cls)


class Message(BaseModel):
    """A command or event payload. Subclasses are registered with :func:`message`.

    Every text field and list is bounded: by its own ``max_length`` or pattern, else by
    :data:`MAX_TEXT` / :data:`MAX_ITEMS`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        bound_fields(cls)

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
        step = _UPCASTERS.get((type_name, v))
        if step is None:
            raise UnknownMessageType(f"no upcaster for {type_name} v{v} -> v{v + 1}")
        data = step(data)  # a payload it cannot read raises here (a KeyError is not "no upcaster")
    return data


def parse_payload(type_name: str, version: int, payload: Mapping[str, Any]) -> Message:
    """Validate a payload of any known version as the current model of its type."""
    return message_class(type_name).model_validate(upcast(type_name, version, payload))


#: What a personal field holds, read back from a log, once its participant was erased (their key
#: deleted, so the field can no longer be decrypted). Never valid in a message that is sent.
ERASED = "[erased]"
_ERASED_VARIANTS: dict[type[Message], type[Message]] = {}


def erased_fields(message: Message) -> frozenset[str]:
    """The personal fields of ``message`` that read :data:`ERASED`: not empty only for an event of
    an erased participant read back from a log (:func:`parse_stored`)."""
    return frozenset(f for f in type(message).PERSONAL_FIELDS if getattr(message, f, None) == ERASED)


def parse_stored(type_name: str, version: int, payload: Mapping[str, Any]) -> Message:
    """Like :func:`parse_payload`, for an event read back from a log: a personal field may read
    :data:`ERASED` (its participant was erased), whatever its type (a date, an enum, a nested
    model). Such an event is validated as a subclass of its model whose personal fields also
    accept the marker, so every other field is checked as usual and ``isinstance``/``match`` on
    the model still hold. Only where events are read back from a log; what arrives from outside
    is parsed strictly (:func:`parse_payload`)."""
    cls = message_class(type_name)
    data = upcast(type_name, version, payload)
    if not any(data.get(f) == ERASED for f in cls.PERSONAL_FIELDS):
        return cls.model_validate(data)
    return _erased_variant(cls).model_validate(data)


def _erased_variant(cls: type[Message]) -> type[Message]:
    """``cls`` with each personal field widened to also accept :data:`ERASED` (its own type and
    constraints kept for any other value). Built once per class."""
    if (variant := _ERASED_VARIANTS.get(cls)) is None:
        fields: dict[str, Any] = {}
        for name in cls.PERSONAL_FIELDS:
            field = cls.model_fields[name]
            kept = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            fields[name] = (Union[kept, Literal[ERASED]], ... if field.is_required() else field.default)  # noqa: UP007 (built at run time)
        variant = create_model(f"{cls.__name__}AsErased", __base__=cls, __module__=cls.__module__, **fields)
        _ERASED_VARIANTS[cls] = variant
    return variant


def registered() -> Mapping[str, type[Message]]:
    """Every registered type name and its current class, sorted by name."""
    return dict(sorted(_LATEST.items()))
