"""The registration decider (walking-skeleton scope: RegisterParticipant -> ParticipantRegistered)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from jmo_contracts import Command, Event, Message
from jmo_contracts.registration import ParticipantRegistered, RegisterParticipant
from jmo_runtime import Context, Decider, Rejection

from .identity_rules import check_email, normalise_name, parse_nik, to_e164


class Status(StrEnum):
    NEW = "NEW"
    REGISTERED = "REGISTERED"


@dataclass(frozen=True)
class Registration:
    status: Status = Status.NEW
    participant_id: str | None = None


def decide(command: Command, state: Registration, context: Context) -> Sequence[Event]:
    match command:
        case RegisterParticipant():
            return [register(command, state, context)]
    raise Rejection("UNSUPPORTED_COMMAND", f"registration does not handle {command.TYPE}")


def register(command: RegisterParticipant, state: Registration, context: Context) -> ParticipantRegistered:
    if state.status is not Status.NEW:
        raise Rejection("REGISTRATION_ALREADY_STARTED", "this registration already has a participant")
    facts = parse_nik(command.nik, context.now.date())
    return ParticipantRegistered(
        participant_id=context.stream_id.rsplit("-", 1)[1],
        category=command.category,
        nik=command.nik,
        full_name=normalise_name(command.full_name),
        email=check_email(command.email),
        phone=to_e164(command.phone),
        otp_channel=command.otp_channel,
        birth_date=facts.birth_date,
        gender=facts.gender,
    )


def evolve(state: Registration, event: Message) -> Registration:
    match event:
        case ParticipantRegistered():
            return replace(state, status=Status.REGISTERED, participant_id=event.participant_id)
    return state


registration = Decider(initial_state=Registration(), decide=decide, evolve=evolve)
