"""The decider shape every service's domain follows: pure functions, no I/O, no clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from jmo_contracts import Command, Event, Message
from jmo_contracts.common import CommandRejected

S = TypeVar("S")


@dataclass(frozen=True)
class Context:
    """What a decision may know besides the command and the state: when, and for which stream."""

    now: datetime
    stream_id: str


@dataclass(frozen=True)
class Decider(Generic[S]):
    """``decide(command, state, context) -> events`` and ``evolve(state, event) -> state``."""

    initial_state: S
    decide: Callable[[Command, S, Context], Sequence[Event]]
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


def rejected(service: str, command_type: str, command_id: str, reason_code: str, reason: str) -> CommandRejected:
    return CommandRejected(service=service, command_type=command_type, command_id=command_id, reason_code=reason_code, reason=reason)
