"""The pengkinian-data session decider (SPEC §5): seven steps in order, then ``ProfileUpdated``. Pure.

Stream ``profile-update-<session_id>``. Steps (:class:`Step`)::

    NEW ──StartProfileUpdate (account ACTIVE)──▶ STARTED ──ConfirmParticipationData(true)──▶
    PARTICIPATION_CONFIRMED ──SelfieMatched (biometric)──▶ SELFIE_VERIFIED ──SubmitContactData──▶
    CONTACT_SUBMITTED ──SubmitPopulationData──▶ POPULATION_SUBMITTED ──SubmitAdditionalData──▶
    ADDITIONAL_SUBMITTED ──ConfirmProfileUpdate (terms ticked, changed contacts verified)──▶ UPDATED

    ConfirmParticipationData(false) or the last selfie attempt rejected ──▶ CANCELLED
    no step completed before ``expires_at`` (inactivity) ──▶ EXPIRED

UPDATED, CANCELLED and EXPIRED are closed. Identity's ``OtpVerified`` (purpose CONTACT_CHANGE, this
session) records the verification of a changed phone or email at any step after the contact step.

Facts the application looks up before deciding (``context.facts``, a :class:`SessionFacts`): the
participant's profile and the inactivity timeout. Every message but the scheduler's
``ExpireProfileUpdate`` needs them (the expiry reads none); a decision that needs them and is
given none is an error of the application (:class:`~jmo_runtime.decider.InvariantBroken`), never a
silent default.

``context.message_id`` (the message being decided) is recorded as the ``source_message_id`` of
what other services' events cause, and as the ``command_id`` of a rejection decided together with
an expiry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from jmo_contracts import Event, Message
from jmo_contracts.biometric import SelfieMatched, SelfieRejected
from jmo_contracts.common import OtpChannel
from jmo_contracts.identity import OtpPurpose, OtpVerified
from jmo_contracts.profile_update import (
    AdditionalDataSubmitted,
    CancellationReason,
    ConfirmParticipationData,
    ConfirmProfileUpdate,
    ContactChangeVerified,
    ContactDataSubmitted,
    ExpireProfileUpdate,
    ParticipationDataConfirmed,
    PopulationDataSubmitted,
    ProfileUpdateCancelled,
    ProfileUpdated,
    ProfileUpdateExpired,
    ProfileUpdateStarted,
    ProfileUpdateStep,
    ProfileValues,
    SelfieVerificationRecorded,
    StartProfileUpdate,
    SubmitAdditionalData,
    SubmitContactData,
    SubmitPopulationData,
)
from jmo_runtime import Context, Decider, Rejection, require
from jmo_runtime.decider import rejected

from . import fields

SERVICE = "profile-update"


class Step(StrEnum):
    NEW = "NEW"
    STARTED = "STARTED"
    PARTICIPATION_CONFIRMED = "PARTICIPATION_CONFIRMED"
    SELFIE_VERIFIED = "SELFIE_VERIFIED"
    CONTACT_SUBMITTED = "CONTACT_SUBMITTED"
    POPULATION_SUBMITTED = "POPULATION_SUBMITTED"
    ADDITIONAL_SUBMITTED = "ADDITIONAL_SUBMITTED"
    UPDATED = "UPDATED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


ORDER = [Step.NEW, Step.STARTED, Step.PARTICIPATION_CONFIRMED, Step.SELFIE_VERIFIED, Step.CONTACT_SUBMITTED, Step.POPULATION_SUBMITTED, Step.ADDITIONAL_SUBMITTED, Step.UPDATED]
CLOSED = frozenset({Step.UPDATED, Step.CANCELLED, Step.EXPIRED})
#: The step a command needs the session to be at.
NEEDS = {
    ConfirmParticipationData: Step.STARTED,
    SubmitContactData: Step.SELFIE_VERIFIED,
    SubmitPopulationData: Step.CONTACT_SUBMITTED,
    SubmitAdditionalData: Step.POPULATION_SUBMITTED,
    ConfirmProfileUpdate: Step.ADDITIONAL_SUBMITTED,
}
#: The fields of the profile this journey may change (core identity fields are not among them).
EDITABLE = tuple(ProfileValues.model_fields)


@dataclass(frozen=True)
class Session:
    step: Step = Step.NEW
    participant_id: str | None = None
    session_id: str | None = None
    expires_at: datetime | None = None
    contact: ContactDataSubmitted | None = None
    population: PopulationDataSubmitted | None = None
    additional: AdditionalDataSubmitted | None = None
    verified: frozenset[OtpChannel] = field(default_factory=frozenset)
    #: The selfie matched while the participation data was still being confirmed (the biometric
    #: service may decide before this session has seen the confirmation): the step after it is due.
    selfie_verified: bool = False

    @property
    def pending_verification(self) -> frozenset[OtpChannel]:
        required = frozenset(self.contact.verification_required) if self.contact else frozenset()
        return required - self.verified


@dataclass(frozen=True)
class SessionFacts:
    """What the application looks up before a session decides a message."""

    #: The participant's profile from the read model (a mapping, see ``profile.py``), or None when the
    #: participant is unknown (or erased) — read by ``StartProfileUpdate`` (must be ACTIVE), the contact
    #: step (what changed, so what needs an OTP), the population step (gender from the NIK), the
    #: additional step (own phone) and the confirmation (which fields changed).
    profile: Mapping[str, Any] | None
    #: Inactivity after which the session expires: the deadline each step sets is ``now`` plus this.
    session_timeout: timedelta


def _facts(context: Context) -> SessionFacts:
    return context.facts_as(SessionFacts)


def _deadline(context: Context) -> datetime:
    return context.now + _facts(context).session_timeout


def _expired(state: Session, now: datetime) -> bool:
    return state.step not in CLOSED and state.step is not Step.NEW and state.expires_at is not None and now >= state.expires_at


def _last_step(state: Session) -> ProfileUpdateStep:
    return ProfileUpdateStep(state.step.value)


# --- decide ----------------------------------------------------------------------------------


def decide(message: Message, state: Session, context: Context) -> Sequence[Event]:
    match message:
        case StartProfileUpdate():
            return [start(message, state, context)]
        case ExpireProfileUpdate():
            return expire(state, context)
        case SelfieMatched() | SelfieRejected():
            return selfie_decided(message, state, context)
        case OtpVerified():
            return contact_change_verified(message, state, context)
        case ConfirmParticipationData() | SubmitContactData() | SubmitPopulationData() | SubmitAdditionalData() | ConfirmProfileUpdate():
            return step(message, state, context)
    raise Rejection("UNSUPPORTED_COMMAND", f"profile-update does not handle {message.TYPE}")


def start(command: StartProfileUpdate, state: Session, context: Context) -> ProfileUpdateStarted:
    if state.step is not Step.NEW:
        if state.participant_id != command.participant_id:
            raise Rejection("NOT_YOUR_SESSION", "this session belongs to another participant")
        raise Rejection("SESSION_ALREADY_STARTED", "this session was already started; continue it or start a new one")
    profile = _facts(context).profile
    if not profile:
        raise Rejection("UNKNOWN_PARTICIPANT", "no JMO account is known for this participant")
    if profile.get("status") != "ACTIVE":
        raise Rejection("ACCOUNT_NOT_ACTIVE", "pengkinian data is only for participants whose account is active")
    return ProfileUpdateStarted(participant_id=command.participant_id, session_id=command.session_id, expires_at=_deadline(context))


def _open_for(command: Any, state: Session, context: Context) -> list[Event]:
    """Refuse a command that does not belong to an open session of its participant. An inactive
    session found here expires now: the expiry is recorded along with the refusal."""
    if state.step is Step.NEW:
        raise Rejection("SESSION_NOT_FOUND", "no pengkinian-data session was started with this id")
    if state.participant_id != command.participant_id:
        raise Rejection("NOT_YOUR_SESSION", "this session belongs to another participant")
    if state.step is Step.EXPIRED:
        raise Rejection("SESSION_EXPIRED", "this session expired; start a new one")
    if state.step in CLOSED:
        raise Rejection("SESSION_CLOSED", f"this session is {state.step.lower()}; start a new one")
    if _expired(state, context.now):
        command_id = context.message_id or "0" * 32
        return [
            ProfileUpdateExpired(participant_id=command.participant_id, session_id=command.session_id, last_step=_last_step(state)),
            rejected(SERVICE, command.TYPE, command_id, "SESSION_EXPIRED", "this session expired after inactivity; start a new one"),
        ]
    return []


def _in_order(command: Any, state: Session) -> None:
    needed = NEEDS[type(command)]
    if state.step is needed:
        return
    if ORDER.index(state.step) > ORDER.index(needed):
        raise Rejection("STEP_ALREADY_COMPLETED", f"{command.TYPE} was already done in this session")
    if needed is Step.SELFIE_VERIFIED and state.step is Step.PARTICIPATION_CONFIRMED:
        raise Rejection("SELFIE_NOT_VERIFIED", "the selfie must match the KTP photo before the data can be changed")
    raise Rejection("STEP_OUT_OF_ORDER", f"{command.TYPE} comes after step {needed.value}; the session is at {state.step.value}")


def step(command: Any, state: Session, context: Context) -> Sequence[Event]:
    expired = _open_for(command, state, context)
    if expired:
        return expired
    _in_order(command, state)
    match command:
        case ConfirmParticipationData():
            return participation(command, state, context)
        case SubmitContactData():
            return [contact_data(command, state, context)]
        case SubmitPopulationData():
            return [population_data(command, state, context)]
        case SubmitAdditionalData():
            return [additional_data(command, state, context)]
        case ConfirmProfileUpdate():
            return [confirm(command, state, context)]
    raise AssertionError(command)


def participation(command: ConfirmParticipationData, state: Session, context: Context) -> Sequence[Event]:
    if not command.confirmed:
        return [
            ProfileUpdateCancelled(
                participant_id=command.participant_id, session_id=command.session_id, reason_code=CancellationReason.PARTICIPATION_DATA_DISPUTED,
                reason="Data kepesertaan tidak sesuai; silakan hubungi kantor cabang BPJS Ketenagakerjaan atau ajukan surat koreksi dari pemberi kerja",
            )
        ]
    return [ParticipationDataConfirmed(participant_id=command.participant_id, session_id=command.session_id, expires_at=_deadline(context))]


def _profile(context: Context) -> Mapping[str, Any]:
    profile = _facts(context).profile
    if not profile or profile.get("status") != "ACTIVE":
        raise Rejection("ACCOUNT_NOT_ACTIVE", "pengkinian data is only for participants whose account is active")
    return profile


def contact_data(command: SubmitContactData, state: Session, context: Context) -> ContactDataSubmitted:
    profile = _profile(context)
    phone, email = fields.to_e164(command.phone), fields.check_email(command.email)
    npwp, passport = fields.check_npwp(command.npwp), fields.check_passport(command.passport_number)
    bank = fields.known_bank(command.bank_name)
    account = fields.check_bank_account(bank, command.bank_account_number)
    changed = [channel for channel, new, old in ((OtpChannel.SMS, phone, profile.get("phone")), (OtpChannel.EMAIL, email, profile.get("email"))) if new != old]
    return ContactDataSubmitted(
        participant_id=command.participant_id, session_id=command.session_id, phone=phone, email=email, npwp=npwp, passport_number=passport,
        bank_name=bank.name, bank_account_number=account, npwp_missing_warning=npwp is None, verification_required=changed, expires_at=_deadline(context),
    )


def population_data(command: SubmitPopulationData, state: Session, context: Context) -> PopulationDataSubmitted:
    profile = _profile(context)
    if profile.get("gender") and command.gender.value != profile["gender"]:
        raise Rejection("GENDER_MISMATCH", "gender does not match the one encoded in the NIK")
    address = command.address.model_copy(update={k: " ".join(v.split()) for k, v in command.address.model_dump().items() if isinstance(v, str)})
    if not all(getattr(address, f) for f in ("street", "village", "district", "city", "province")):
        raise Rejection("INVALID_ADDRESS", "street, village, district, city and province are required")
    return PopulationDataSubmitted(
        participant_id=command.participant_id, session_id=command.session_id, gender=command.gender,
        mother_maiden_name=fields.normalise_name(command.mother_maiden_name), address=address, marital_status=command.marital_status, expires_at=_deadline(context),
    )


def additional_data(command: SubmitAdditionalData, state: Session, context: Context) -> AdditionalDataSubmitted:
    require(state.contact is not None, "the population step comes after the contact step")
    name, phone = fields.normalise_name(command.emergency_contact_name), fields.to_e164(command.emergency_contact_phone)
    if phone in (state.contact.phone, _profile(context).get("phone")):
        raise Rejection("EMERGENCY_CONTACT_IS_OWN_PHONE", "the emergency contact must be someone else's number")
    relationship = " ".join(command.emergency_contact_relationship.split()) if command.emergency_contact_relationship else None
    return AdditionalDataSubmitted(
        participant_id=command.participant_id, session_id=command.session_id, last_education=command.last_education, blood_type=command.blood_type,
        religion=command.religion, emergency_contact_name=name, emergency_contact_phone=phone, emergency_contact_relationship=relationship or None, expires_at=_deadline(context),
    )


def submitted_values(state: Session) -> dict[str, Any]:
    """Every editable field as this session would set it (JSON-ready)."""
    values: dict[str, Any] = {}
    for part in (state.contact, state.population, state.additional):
        if part is not None:
            dumped = part.model_dump(mode="json")
            values.update({k: dumped[k] for k in EDITABLE if k in dumped})
    return values


def confirm(command: ConfirmProfileUpdate, state: Session, context: Context) -> ProfileUpdated:
    if not command.terms_accepted:
        raise Rejection("TERMS_NOT_ACCEPTED", "tick the box to agree to the terms before saving")
    if state.pending_verification:
        channels = ", ".join(sorted(c.value for c in state.pending_verification))
        raise Rejection("CONTACT_NOT_VERIFIED", f"the changed {channels} must be verified with the OTP first")
    profile = _profile(context)
    new = submitted_values(state)
    changed = [name for name in EDITABLE if name in new and new[name] != profile.get(name)]
    require(state.contact is not None, "the confirmation comes after the contact step")
    return ProfileUpdated(
        participant_id=command.participant_id, session_id=command.session_id, changed_fields=changed,
        new_values=ProfileValues.model_validate({name: new[name] for name in changed}),
        contact_email=state.contact.email, contact_phone=state.contact.phone,
        notification_channel=OtpChannel(profile.get("notification_channel") or OtpChannel.EMAIL),
    )


def selfie_decided(event: SelfieMatched | SelfieRejected, state: Session, context: Context) -> Sequence[Event]:
    """The biometric service's decision: counts while the session waits for the selfie, or is one
    step before it (the decision overtook the confirmation of the participation data: it is kept,
    and the session goes on to the contact step once the confirmation comes)."""
    waiting = state.step is Step.PARTICIPATION_CONFIRMED or (state.step is Step.STARTED and not state.selfie_verified)
    if not waiting or event.participant_id != state.participant_id or _expired(state, context.now):
        return []
    if isinstance(event, SelfieMatched):
        source = context.message_id
        return [SelfieVerificationRecorded(participant_id=event.participant_id, session_id=event.session_id, source_message_id=source, expires_at=_deadline(context))]
    if event.attempts_left == 0:
        return [
            ProfileUpdateCancelled(
                participant_id=event.participant_id, session_id=event.session_id, reason_code=CancellationReason.SELFIE_ATTEMPTS_EXHAUSTED,
                reason="Batas percobaan swafoto habis; silakan mulai lagi nanti atau datang ke kantor cabang",
            )
        ]
    return []


def contact_change_verified(event: OtpVerified, state: Session, context: Context) -> Sequence[Event]:
    """Identity's OtpVerified for a changed contact of this session (its new value exactly)."""
    if event.purpose is not OtpPurpose.CONTACT_CHANGE or event.participant_id != state.participant_id or state.contact is None:
        return []
    if state.step in CLOSED or event.channel not in state.pending_verification or _expired(state, context.now):
        return []
    expected = state.contact.email if event.channel is OtpChannel.EMAIL else state.contact.phone
    if event.destination.strip().lower() != expected.lower():
        return []
    source = context.message_id
    return [ContactChangeVerified(participant_id=event.participant_id, session_id=state.session_id, channel=event.channel, source_message_id=source, expires_at=_deadline(context))]


def expire(state: Session, context: Context) -> Sequence[Event]:
    """The scheduler's ExpireProfileUpdate: only an open session past its deadline expires."""
    if not _expired(state, context.now):
        return []
    require(state.participant_id is not None and state.session_id is not None, "an open session has its participant and id")
    return [ProfileUpdateExpired(participant_id=state.participant_id, session_id=state.session_id, last_step=_last_step(state))]


# --- evolve ----------------------------------------------------------------------------------


def evolve(state: Session, event: Message) -> Session:
    deadline = getattr(event, "expires_at", None)
    if deadline is not None:
        state = replace(state, expires_at=deadline)
    match event:
        case ProfileUpdateStarted():
            return replace(state, step=Step.STARTED, participant_id=event.participant_id, session_id=event.session_id)
        case ParticipationDataConfirmed():
            return replace(state, step=Step.SELFIE_VERIFIED if state.selfie_verified else Step.PARTICIPATION_CONFIRMED)
        case SelfieVerificationRecorded():
            if state.step is Step.STARTED:  # early: kept until the participation data is confirmed
                return replace(state, selfie_verified=True)
            return replace(state, step=Step.SELFIE_VERIFIED, selfie_verified=True)
        case ContactDataSubmitted():
            return replace(state, step=Step.CONTACT_SUBMITTED, contact=event)
        case ContactChangeVerified():
            return replace(state, verified=state.verified | {event.channel})
        case PopulationDataSubmitted():
            return replace(state, step=Step.POPULATION_SUBMITTED, population=event)
        case AdditionalDataSubmitted():
            return replace(state, step=Step.ADDITIONAL_SUBMITTED, additional=event)
        case ProfileUpdated():
            return replace(state, step=Step.UPDATED)
        case ProfileUpdateCancelled():
            return replace(state, step=Step.CANCELLED)
        case ProfileUpdateExpired():
            return replace(state, step=Step.EXPIRED)
    return state


session = Decider(initial_state=Session(), decide=decide, evolve=evolve)
