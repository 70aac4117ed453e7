"""The decider shape every service's domain follows: pure functions, no I/O, no clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from jmo_contracts import Event, Message
from jmo_contracts.common import CommandRejected

S = TypeVar("S")
F = TypeVar("F")


@dataclass(frozen=True)
class Context:
    """What a decision may know besides the message and the state: when, for which stream, and
    ``facts`` the application looked up for it beforehand (registry answers, reserved numbers...),
    so that the decision itself stays pure. Each decider declares its facts as a frozen dataclass
    that its application fills (a mapping is still accepted while services move over)."""

    now: datetime
    stream_id: str
    facts: Any = field(default_factory=dict)
    #: The id of the message being decided (a command, or another service's event): recorded as the
    #: ``command_id`` of a rejection, or the ``source_message_id`` of what an event caused.
    message_id: str | None = None

    def facts_as(self, kind: type[F]) -> F:
        """The facts, which this decision needs to be its decider's ``kind``. Facts the application
        did not look up (or others) are a bug of the service, not the sender's fault, so nothing is
        assumed and nothing rejected: :class:`InvariantBroken`, and the message is parked."""
        require(isinstance(self.facts, kind), f"this decision needs {kind.__name__} facts, and was given {type(self.facts).__name__}")
        return self.facts  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Decider(Generic[S]):
    """``decide(message, state, context) -> events`` and ``evolve(state, event) -> state``.

    The message is a command, or an event of another service that this stream reacts to.
    """

    initial_state: S
    decide: Callable[[Message, S, Context], Sequence[Event]]
    evolve: Callable[[S, Message], S]

    def fold(self, events: Iterable[Message]) -> S:
        state = self.initial_state
        for event in events:
            state = self.evolve(state, event)
        return state


class Rejection(Exception):
    """Raised inside a decide function to refuse a command with a reason code.

    The command handler turns it into a :class:`CommandRejected` event; deciders may also return
    domain-specific rejection events directly.
    """

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(f"{reason_code}: {reason}")
        self.reason_code = reason_code
        self.reason = reason


class InvariantBroken(Exception):
    """The state a decider was handed cannot occur by its own rules (a bug, or a tampered log):
    nothing is decided, and the message is parked once its failure budget is spent."""


def require(condition: object, what: str) -> None:
    """A decider's invariant, checked also under ``python -O`` (where ``assert`` vanishes)."""
    if not condition:
        raise InvariantBroken(what)


def rejected(service: str, command_type: str, command_id: str, reason_code: str, reason: str) -> CommandRejected:
    return CommandRejected(service=service, command_type=command_type, command_id=command_id, reason_code=reason_code, reason=reason)
