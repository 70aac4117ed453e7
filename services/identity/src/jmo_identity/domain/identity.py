"""The identity decider: NIK verification against Dukcapil, then contact verification by OTP.

Stream ``identity-<participant_id>``. Registration's ``ParticipantRegistered`` starts it; what
Dukcapil answered and the new code's keyed hash arrive as facts, so the decision stays pure. The
facts are the frozen dataclasses below, one per message: :class:`NikAnswer` or
:class:`NikUnanswered` (``ParticipantRegistered``), :class:`CodeRequest` (``RequestOtp``),
:class:`CodeSubmission` (``SubmitOtp``). A decision given none decides nothing (``InvariantBroken``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum

from jmo_contracts import Event, Message
from jmo_contracts.common import OtpChannel
from jmo_contracts.identity import (
    NikDeferralReason,
    NikRejected,
    NikRejectionReason,
    NikVerificationDeferred,
    NikVerified,
    OtpIssued,
    OtpPurpose,
    OtpRejected,
    OtpRejectionReason,
    OtpVerified,
    RequestOtp,
    SubmitOtp,
)
from jmo_contracts.registration import ParticipantRegistered
from jmo_runtime import Context, Decider, Rejection, require
from jmo_runtime.rules import check_email, to_e164

from . import otp


class NikStatus(StrEnum):
    UNKNOWN = "UNKNOWN"
    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"


#: Dukcapil's three answers (:attr:`NikAnswer.answer`).
SESUAI, TIDAK_SESUAI, NOT_FOUND = "SESUAI", "TIDAK_SESUAI", "NOT_FOUND"


@dataclass(frozen=True)
class NewCode:
    """A code drawn for a decision, as the log may know it: its id, its keyed hash, the hash key's id."""

    otp_id: str
    code_hmac: str
    key_id: str


@dataclass(frozen=True)
class NikAnswer:
    """For ``ParticipantRegistered``: Dukcapil's answer (:data:`SESUAI`, :data:`TIDAK_SESUAI` or
    :data:`NOT_FOUND`), and the policy and code of the first OTP (issued only on ``SESUAI``)."""

    answer: str
    policy: otp.OtpPolicy
    code: NewCode


@dataclass(frozen=True)
class NikUnanswered:
    """For ``ParticipantRegistered`` while Dukcapil cannot be asked: why, and when it is tried again."""

    reason: NikDeferralReason
    retry_in: timedelta


@dataclass(frozen=True)
class CodeRequest:
    """For ``RequestOtp``. ``contact_change_allowed``: a ``CONTACT_CHANGE`` code's contact was
    submitted in a live session of this participant (``None`` for other purposes).
    ``destination_allowed``: the destination's hourly quota let one more code through (``None``
    when not asked: no destination, or refused before). ``code``: the code drawn for it (``None``
    when the request was refused before one was drawn)."""

    policy: otp.OtpPolicy
    contact_change_allowed: bool | None
    destination_allowed: bool | None
    code: NewCode | None


@dataclass(frozen=True)
class CodeSubmission:
    """For ``SubmitOtp``: the submitted code is the one whose keyed hash the log holds."""

    matches: bool


@dataclass(frozen=True)
class Identity:
    participant_id: str | None = None
    nik: NikStatus = NikStatus.UNKNOWN
    contacts: dict[OtpChannel, str] = field(default_factory=dict)  # registration contacts a code went to
    codes: otp.OtpState = otp.initial_state
    deferrals: int = 0  # NIK checks put off because Dukcapil could not be asked


def decide(message: Message, state: Identity, context: Context) -> Sequence[Event]:
    match message:
        case ParticipantRegistered():
            return verify_nik(message, state, context)
        case RequestOtp():
            return request_code(message, state, context)
        case SubmitOtp():
            return [submit_code(message, state, context)]
    raise Rejection("UNSUPPORTED_COMMAND", f"identity does not handle {message.TYPE}")


def verify_nik(registered: ParticipantRegistered, state: Identity, context: Context) -> Sequence[Event]:
    if state.nik is not NikStatus.UNKNOWN:
        return []  # this participant was checked already
    pid = registered.participant_id
    registration_stream = f"registration-{pid}"
    if isinstance(context.facts, NikUnanswered):
        return [
            NikVerificationDeferred(
                participant_id=pid, registration_stream_id=registration_stream, reason_code=context.facts.reason,
                reason="Dukcapil belum dapat dihubungi; pemeriksaan NIK dicoba lagi otomatis", attempt=state.deferrals + 1,
                retry_at=context.now + context.facts.retry_in,
            )
        ]
    checked = context.facts_as(NikAnswer)
    answer = checked.answer
    if answer != SESUAI:
        reason = NikRejectionReason.DUKCAPIL_MISMATCH if answer == TIDAK_SESUAI else NikRejectionReason.NOT_FOUND
        text = "Data tidak sesuai dengan data Dukcapil" if answer == TIDAK_SESUAI else "Data tidak ditemukan di Dukcapil"
        return [NikRejected(participant_id=pid, registration_stream_id=registration_stream, reason_code=reason, reason=text)]
    destination = registered.email if registered.otp_channel is OtpChannel.EMAIL else registered.phone
    code = checked.code
    issued = otp.issue(
        state.codes, checked.policy, context.now, participant_id=pid, otp_id=code.otp_id, code_hmac=code.code_hmac,
        key_id=code.key_id, channel=registered.otp_channel, destination=destination, purpose=OtpPurpose.REGISTRATION,
    )
    return [NikVerified(participant_id=pid, registration_stream_id=registration_stream, attempts=1), issued]


def request_code(command: RequestOtp, state: Identity, context: Context) -> Sequence[Event]:
    pid = _participant(state, command.participant_id)
    request = context.facts_as(CodeRequest)
    session_id = None
    if command.purpose is OtpPurpose.CONTACT_CHANGE:
        destination, session_id = _new_contact(command)
        if request.contact_change_allowed is not True:
            raise Rejection("NO_LIVE_SESSION", "a contact-change code goes only to the contact submitted in a live pengkinian-data session of this participant")
    else:
        destination = state.contacts.get(command.channel)
        if destination is None:
            raise Rejection("CONTACT_REQUIRED", f"no {command.channel} contact was given at registration")
    if request.destination_allowed is False:  # across participants: one email or phone is not flooded
        refusal = otp.OtpRefusal(OtpRejectionReason.HOURLY_LIMIT, "Batas permintaan kode OTP ke tujuan ini tercapai; coba lagi nanti")
        return [refusal.as_event(participant_id=pid, purpose=command.purpose, command_id=_message_id(context))]
    code = request.code
    require(code is not None, "a code is drawn for every request not refused before")
    try:
        return [otp.issue(
            state.codes, request.policy, context.now, participant_id=pid, otp_id=code.otp_id, code_hmac=code.code_hmac,  # type: ignore[union-attr]
            key_id=code.key_id, channel=command.channel, destination=destination, purpose=command.purpose, profile_update_session_id=session_id,
        )]
    except otp.OtpRefusal as refusal:
        return [refusal.as_event(participant_id=pid, purpose=command.purpose, command_id=_message_id(context))]


def _message_id(context: Context) -> str:
    require(context.message_id is not None, "a command is decided with its message id")
    return context.message_id  # type: ignore[return-value]


def otp_destination(command: RequestOtp, state: Identity) -> str | None:
    """Where the code ``command`` asks for would go (normalised), or None if it names none."""
    if command.purpose is OtpPurpose.CONTACT_CHANGE:
        try:
            return _new_contact(command)[0]
        except Rejection:
            return None
    return state.contacts.get(command.channel)


def _new_contact(command: RequestOtp) -> tuple[str, str]:
    """The new email or mobile number of a CONTACT_CHANGE request, normalised, and its session."""
    if not command.new_contact or not command.new_contact.strip():
        raise Rejection("CONTACT_REQUIRED", "the new email or mobile number to verify is missing")
    if command.profile_update_session_id is None:
        raise Rejection("SESSION_REQUIRED", "a contact change is verified for a pengkinian-data session; its id is missing")
    contact = check_email(command.new_contact) if command.channel is OtpChannel.EMAIL else to_e164(command.new_contact)
    return contact, command.profile_update_session_id


def submit_code(command: SubmitOtp, state: Identity, context: Context) -> OtpVerified | OtpRejected:
    pid = _participant(state, command.participant_id)
    return otp.verify(
        state.codes, context.now, participant_id=pid, purpose=command.purpose, otp_id=command.otp_id,
        matches=context.facts_as(CodeSubmission).matches, command_id=_message_id(context),
    )


def _participant(state: Identity, claimed: str) -> str:
    if state.nik is NikStatus.UNKNOWN:
        raise Rejection("UNKNOWN_PARTICIPANT", "no verified registration for this participant")
    if state.nik is NikStatus.REJECTED:
        raise Rejection("NIK_REJECTED", "the NIK was not confirmed by Dukcapil; registration cannot continue")
    if claimed != state.participant_id:
        raise Rejection("WRONG_PARTICIPANT", "the command names another participant than its stream")
    require(state.participant_id is not None, "a checked NIK belongs to a participant")
    return state.participant_id  # type: ignore[return-value]


def evolve(state: Identity, event: Message) -> Identity:
    match event:
        case NikVerified():
            state = replace(state, participant_id=event.participant_id, nik=NikStatus.VERIFIED)
        case NikRejected():
            state = replace(state, participant_id=event.participant_id, nik=NikStatus.REJECTED)
        case NikVerificationDeferred():
            state = replace(state, participant_id=event.participant_id, deferrals=event.attempt)
        case OtpIssued() if event.purpose is OtpPurpose.REGISTRATION:
            state = replace(state, contacts={**state.contacts, event.channel: event.destination})
    return replace(state, codes=otp.evolve(state.codes, event))


identity = Decider(initial_state=Identity(), decide=decide, evolve=evolve)
