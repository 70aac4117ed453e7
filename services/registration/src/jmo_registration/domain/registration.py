"""The registration decider (SPEC §3): from RegisterParticipant to AccountActivated. Pure.

Stream ``registration-<participant_id>``. Besides the registration commands it receives identity's
``NikVerified`` / ``NikRejected`` / ``OtpVerified`` for this participant, and two internal commands
of its own schedulers (``RetryEmployerMembershipCheck``, ``ExpireRegistration``).

Stages (:class:`Status`)::

    NEW ──RegisterParticipant──▶ NIK_VERIFICATION ──NikVerified──▶ OTP_VERIFICATION
        ──OtpVerified(REGISTRATION)──▶ EMPLOYMENT_DETAILS ──ProvideEmploymentDetails──▶
          BPU / PMI: PAYMENT ──RecordContributionPayment (right reference and amount)──▶ ACTIVE
          PU:        ACTIVE (active membership) | REJECTED (none / inactive)
                     | EMPLOYER_MEMBERSHIP (registry unreachable) ──retry──▶ ACTIVE | REJECTED | again
    NikRejected ──▶ REJECTED;   ExpireRegistration (due, not finished) ──▶ EXPIRED

REJECTED and EXPIRED are closed: every later command is refused with ``REGISTRATION_CLOSED``
(a payment gets ``ContributionPaymentRejected`` instead, because money was taken) and identity
events are ignored.

What the application looks up before deciding arrives in ``context.facts`` as one of the frozen
dataclasses below, the one the message needs: :class:`Applicant` (``RegisterParticipant``),
:class:`MembershipCheck` (a PU's ``ProvideEmploymentDetails`` / ``RetryEmployerMembershipCheck``),
:class:`Rates` (a BPU's / PMI's ``ProvideEmploymentDetails``), :class:`Activation`
(``RecordContributionPayment``) and :class:`Expiry` (``ExpireRegistration``). Identity's events need
none: their message id (``context.message_id``) is recorded as ``source_message_id``. A decision
that needs facts it was not given decides nothing (``InvariantBroken``: nothing is assumed in their place).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from jmo_contracts import Event, Message
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import NikRejected, NikRejectionReason, NikVerified, OtpPurpose, OtpVerified
from jmo_contracts.registration import (
    AccountActivated,
    ContributionAssessed,
    ContributionPaid,
    ContributionPaymentRejected,
    EmployerMembershipCheckDeferred,
    EmployerMembershipFound,
    EmployerMembershipNotFound,
    EmployerMembershipProblem,
    EmploymentDetailsRecorded,
    ExpireRegistration,
    ParticipantRegistered,
    PaymentRejectionReason,
    Program,
    ProvideEmploymentDetails,
    RecordContributionPayment,
    RegisterParticipant,
    RegistrationContactConfirmed,
    RegistrationExpired,
    RegistrationNikConfirmed,
    RegistrationRejected,
    RegistrationRejectionReason,
    RegistrationStage,
    RetryEmployerMembershipCheck,
)
from jmo_runtime import Context, Decider, Rejection, require

from .contributions import RateTables, assess
from .identity_rules import check_email, normalise_name, parse_nik, to_e164
from .kpj import is_valid_kpj

RETRY_CAP = timedelta(minutes=15)  # the n-th deferred employer check is retried n steps later, but never more than this
UNAVAILABLE = "UNAVAILABLE"
_HEX32_LEN = 32


class Status(StrEnum):
    NEW = "NEW"
    NIK_VERIFICATION = "NIK_VERIFICATION"  # registered; waiting for Dukcapil (via identity)
    OTP_VERIFICATION = "OTP_VERIFICATION"  # NIK confirmed; waiting for the OTP
    EMPLOYMENT_DETAILS = "EMPLOYMENT_DETAILS"  # contact confirmed; waiting for job data and income
    EMPLOYER_MEMBERSHIP = "EMPLOYER_MEMBERSHIP"  # PU: employer registry unreachable; retrying
    PAYMENT = "PAYMENT"  # BPU / PMI: contribution assessed; waiting for the first payment
    ACTIVE = "ACTIVE"  # account activated
    REJECTED = "REJECTED"  # closed: Dukcapil or employer registry said no
    EXPIRED = "EXPIRED"  # closed: left unfinished too long


CLOSED = frozenset({Status.REJECTED, Status.EXPIRED})
#: What an unfinished registration is waiting for, as RegistrationExpired reports it.
WAITING_FOR = {
    Status.NIK_VERIFICATION: RegistrationStage.NIK_VERIFICATION,
    Status.OTP_VERIFICATION: RegistrationStage.OTP_VERIFICATION,
    Status.EMPLOYMENT_DETAILS: RegistrationStage.EMPLOYMENT_DETAILS,
    Status.EMPLOYER_MEMBERSHIP: RegistrationStage.EMPLOYER_MEMBERSHIP,
    Status.PAYMENT: RegistrationStage.PAYMENT,
}


@dataclass(frozen=True)
class Registration:
    status: Status = Status.NEW
    participant_id: str | None = None
    participant: ParticipantRegistered | None = None  # category and contact data, for AccountActivated
    employment: EmploymentDetailsRecorded | None = None
    membership_attempts: int = 0  # PU: deferred employer-registry checks so far
    assessment: ContributionAssessed | None = None  # BPU / PMI
    paid: ContributionPaid | None = None
    payment_transactions: frozenset[str] = field(default_factory=frozenset)  # provider ids already handled
    activated: AccountActivated | None = None
    rejection: RegistrationRejectionReason | None = None


# --- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applicant:
    """For ``RegisterParticipant``: the NIK already has an active account (or a registration at its
    activating step); the NIK or the OTP destination was registered with too often lately."""

    nik_has_active_account: bool
    too_many_attempts: bool


@dataclass(frozen=True)
class MembershipCheck:
    """For a PU's ``ProvideEmploymentDetails`` / ``RetryEmployerMembershipCheck``.

    ``employer_membership``: ``None`` (not found), the membership (a mapping or an object with
    ``kpj_number``, ``employer_npp``, ``employer_name``, ``member_since``, ``programs``, ``active``)
    or :data:`UNAVAILABLE` (the registry could not be asked). ``nik_claimed_elsewhere``: another
    registration of the same NIK claimed it first, so this one ends ``ALREADY_REGISTERED``.
    ``retry_step``: the n-th deferred check is retried n steps later (at most :data:`RETRY_CAP`).
    """

    employer_membership: object
    nik_claimed_elsewhere: bool
    retry_step: timedelta


@dataclass(frozen=True)
class Rates:
    """For a BPU's / PMI's ``ProvideEmploymentDetails``: the contribution rates in force."""

    rate_tables: RateTables


@dataclass(frozen=True)
class Activation:
    """For ``RecordContributionPayment``: the new KPJ number reserved for this registration (``None``
    when none could be), and whether another registration of the same NIK claimed it first."""

    kpj_number: str | None
    nik_claimed_elsewhere: bool


@dataclass(frozen=True)
class Expiry:
    """For ``ExpireRegistration``: how long an unfinished registration may stay open."""

    registration_timeout: timedelta


# --- decide ----------------------------------------------------------------------------------


def decide(message: Message, state: Registration, context: Context) -> Sequence[Event]:
    match message:
        case RegisterParticipant():
            return [register(message, state, context)]
        case NikVerified() | NikRejected():
            return nik_checked(message, state, context)
        case OtpVerified():
            return contact_verified(message, state, context)
        case ProvideEmploymentDetails():
            return employment_details(message, state, context)
        case RetryEmployerMembershipCheck():
            return retry_membership_check(message, state, context)
        case RecordContributionPayment():
            return payment(message, state, context)
        case ExpireRegistration():
            return expire(message, state, context)
    raise Rejection("UNSUPPORTED_COMMAND", f"registration does not handle {message.TYPE}")


def register(command: RegisterParticipant, state: Registration, context: Context) -> ParticipantRegistered:
    if state.status is not Status.NEW:
        raise Rejection("REGISTRATION_ALREADY_STARTED", "this registration already has a participant")
    nik = parse_nik(command.nik, context.now.date())
    event = ParticipantRegistered(
        participant_id=_participant_id(context),
        category=command.category,
        nik=command.nik,
        full_name=normalise_name(command.full_name),
        email=check_email(command.email),
        phone=to_e164(command.phone),
        otp_channel=command.otp_channel,
        birth_date=nik.birth_date,
        gender=nik.gender,
    )
    applicant = context.facts_as(Applicant)
    if applicant.too_many_attempts:  # before telling whether the NIK has an account
        raise Rejection("TOO_MANY_ATTEMPTS", "too many registrations for this NIK or contact in the last hour; try again later")
    if applicant.nik_has_active_account:
        raise Rejection("ALREADY_REGISTERED", "an active JMO account already exists for this NIK; log in instead")
    return event


def _participant_id(context: Context) -> str:
    return context.stream_id.rsplit("-", 1)[1]


def _is_for_this_registration(participant_id: str, state: Registration) -> bool:
    return state.participant_id is not None and participant_id == state.participant_id


def _source_message_id(context: Context) -> str:
    found = context.message_id
    if not (isinstance(found, str) and len(found) == _HEX32_LEN):
        raise Rejection("SOURCE_MESSAGE_ID_MISSING", "the message id of the identity event was not handed to the decision")
    return found


def nik_checked(event: NikVerified | NikRejected, state: Registration, context: Context) -> Sequence[Event]:
    """Identity's Dukcapil answer; ignored unless this registration is waiting for it."""
    if state.status is not Status.NIK_VERIFICATION or not _is_for_this_registration(event.participant_id, state):
        return []
    if isinstance(event, NikVerified):
        return [RegistrationNikConfirmed(participant_id=event.participant_id, source_message_id=_source_message_id(context))]
    if event.reason_code is NikRejectionReason.NOT_FOUND:
        reason, text = RegistrationRejectionReason.NIK_NOT_FOUND, "NIK tidak ditemukan di data Dukcapil; proses pendaftaran tidak dapat dilanjutkan"
    else:
        reason, text = RegistrationRejectionReason.NIK_MISMATCH, "Data tidak sesuai dengan data Dukcapil; proses pendaftaran tidak dapat dilanjutkan"
    return [RegistrationRejected(participant_id=event.participant_id, reason_code=reason, reason=text)]


def contact_verified(event: OtpVerified, state: Registration, context: Context) -> Sequence[Event]:
    """Identity's OtpVerified for the registration contact; ignored before the NIK is confirmed,
    for other purposes, for a destination that is not the registered contact, and when done already."""
    if state.status is not Status.OTP_VERIFICATION or not _is_for_this_registration(event.participant_id, state):
        return []
    if event.purpose is not OtpPurpose.REGISTRATION or state.participant is None:
        return []
    registered = state.participant.email if event.channel is OtpChannel.EMAIL else state.participant.phone
    if event.destination.strip().lower() != registered.lower():
        return []
    return [RegistrationContactConfirmed(participant_id=event.participant_id, channel=event.channel, source_message_id=_source_message_id(context))]


def _require_open(state: Registration) -> None:
    if state.status is Status.NEW or state.participant is None:
        raise Rejection("NOT_REGISTERED", "no registration was started on this stream")
    if state.status in CLOSED:
        raise Rejection("REGISTRATION_CLOSED", f"this registration is {state.status.lower()}; start a new registration")
    if state.status is Status.ACTIVE:
        raise Rejection("ALREADY_ACTIVE", "the account is already active; log in instead")


def employment_details(command: ProvideEmploymentDetails, state: Registration, context: Context) -> Sequence[Event]:
    _require_open(state)
    require(state.participant is not None and state.participant_id is not None, "an open registration has its participant")
    if state.status is Status.NIK_VERIFICATION:
        raise Rejection("NIK_NOT_CONFIRMED", "the NIK has not been confirmed by Dukcapil yet")
    if state.status is Status.OTP_VERIFICATION:
        raise Rejection("CONTACT_NOT_CONFIRMED", "verify the OTP sent to your contact first")
    category = Category(state.participant.category)
    recorded = _recorded_details(command, state.participant_id, category, context.now.date())
    if state.status is Status.PAYMENT:
        if recorded == state.employment:
            return []  # the same details again (a client retry): nothing new
        raise Rejection("EMPLOYMENT_DETAILS_ALREADY_RECORDED", "employment details were recorded and the contribution is due; they cannot be changed now")
    events: list[Event] = [] if recorded == state.employment else [recorded]
    if category is Category.PU:
        return events + _membership_check(state, context)
    assessment = assess(category, recorded.monthly_income, recorded.join_jht, recorded.jht_monthly_amount, context.facts_as(Rates).rate_tables, context.now.date())
    return [
        *events,
        ContributionAssessed(
            participant_id=state.participant_id,
            programs=assessment.programs,
            amount_due=assessment.amount_due,
            payment_reference=payment_reference(category, state.participant_id),
            rate_table_id=assessment.rate_table_id,
            rate_table_effective_from=assessment.effective_from,
        ),
    ]


def _recorded_details(command: ProvideEmploymentDetails, participant_id: str, category: Category, today: date) -> EmploymentDetailsRecorded:
    """The details as recorded, after the per-category rules (contributions are checked by ``assess``)."""
    occupation = " ".join(command.occupation.split())
    if not occupation or len(occupation) > 100:
        raise Rejection("INVALID_OCCUPATION", "occupation must be 1-100 characters")
    employer_name = " ".join((command.employer_name or "").split()) or None
    work_location = " ".join((command.work_location or "").split()) or None
    placement = command.placement
    if category is Category.PMI:
        if placement is None:
            raise Rejection("PLACEMENT_REQUIRED", "a migrant worker must give the destination country and placement period")
        if placement.placement_end <= placement.placement_start:
            raise Rejection("INVALID_PLACEMENT_PERIOD", "the placement must end after it starts")
        if placement.placement_end < today:
            raise Rejection("PLACEMENT_ENDED", "the placement period is already over")
    elif placement is not None:
        raise Rejection("PLACEMENT_NOT_APPLICABLE", "only migrant workers (PMI) give a placement")
    if category is not Category.PU and employer_name is not None:
        raise Rejection("EMPLOYER_NAME_NOT_APPLICABLE", "only wage earners (PU) give an employer")
    if category is Category.PU and (command.join_jht or command.jht_monthly_amount is not None):
        raise Rejection("PROGRAM_CHOICE_NOT_APPLICABLE", "a wage earner's programs are the ones the employer enrolled them in")
    return EmploymentDetailsRecorded(
        participant_id=participant_id,
        category=category,
        occupation=occupation,
        employer_name=employer_name,
        work_location=work_location,
        monthly_income=command.monthly_income,
        join_jht=command.join_jht,
        jht_monthly_amount=command.jht_monthly_amount,
        placement=placement,
    )


def payment_reference(category: Category, participant_id: str) -> str:
    """The billing code (kode iuran) of a participant's first contribution: stable for the participant."""
    return f"JMO-{category.value}-{participant_id[:10].upper()}"


def digital_card_id(participant_id: str) -> str:
    """The digital card of a participant: the same id however often activation is decided."""
    return hashlib.sha256(b"jmo-digital-card-v1\x00" + participant_id.encode()).hexdigest()[:32]


def retry_membership_check(command: RetryEmployerMembershipCheck, state: Registration, context: Context) -> Sequence[Event]:
    """A scheduled retry: acted on only while waiting for the registry and for the latest deferral."""
    if state.status is not Status.EMPLOYER_MEMBERSHIP or command.attempt != state.membership_attempts:
        return []
    return _membership_check(state, context)


def _membership_check(state: Registration, context: Context) -> list[Event]:
    """PU: the employer registry's answer (in the facts) decides activation, rejection or waiting."""
    require(state.participant is not None and state.participant_id is not None, "a membership check follows a registration")
    pid = state.participant_id
    check = context.facts_as(MembershipCheck)
    answer = check.employer_membership
    if isinstance(answer, str):
        if answer != UNAVAILABLE:
            require(False, "employer_membership must be a membership, None or UNAVAILABLE")
        attempt = state.membership_attempts + 1
        return [
            EmployerMembershipCheckDeferred(
                participant_id=pid,
                reason="Employer registry could not be reached; the check is retried",
                attempt=attempt,
                retry_at=context.now + min(check.retry_step * attempt, RETRY_CAP),
            )
        ]
    if answer is None or not _field(answer, "active"):
        problem, reason = (
            (EmployerMembershipProblem.NOT_FOUND, RegistrationRejectionReason.EMPLOYER_MEMBERSHIP_NOT_FOUND)
            if answer is None
            else (EmployerMembershipProblem.MEMBERSHIP_INACTIVE, RegistrationRejectionReason.EMPLOYER_MEMBERSHIP_INACTIVE)
        )
        text = (
            "NIK belum didaftarkan oleh perusahaan; hubungi HRD perusahaan Anda"
            if answer is None
            else "Kepesertaan melalui perusahaan tidak aktif; hubungi HRD perusahaan Anda"
        )
        return [
            EmployerMembershipNotFound(participant_id=pid, reason_code=problem, reason=text),
            RegistrationRejected(participant_id=pid, reason_code=reason, reason=text),
        ]
    try:
        found = EmployerMembershipFound(
            participant_id=pid,
            kpj_number=_field(answer, "kpj_number"),
            employer_npp=_field(answer, "employer_npp"),
            employer_name=_field(answer, "employer_name"),
            member_since=_field(answer, "member_since"),
            programs=[Program(p) for p in _field(answer, "programs")],
        )
    except (KeyError, AttributeError, ValueError, ValidationError):
        raise Rejection("EMPLOYER_REGISTRY_INVALID_ANSWER", "the employer registry's membership record is incomplete or malformed") from None
    if not found.programs:
        raise Rejection("EMPLOYER_REGISTRY_INVALID_ANSWER", "the employer registry lists no program for the membership")
    if check.nik_claimed_elsewhere:
        return [found, _already_registered(state)]
    return [found, _activated(state, found.kpj_number, found.programs, employer_name=found.employer_name)]


def _already_registered(state: Registration) -> RegistrationRejected:
    """Another registration of the same NIK claimed it first (they ran side by side): this one ends."""
    return RegistrationRejected(
        participant_id=state.participant_id, reason_code=RegistrationRejectionReason.ALREADY_REGISTERED,
        reason="Akun JMO untuk NIK ini sudah aktif; silakan masuk (login)",
    )


def _field(record: Any, name: str) -> Any:
    return record[name] if isinstance(record, Mapping) else getattr(record, name)


def _activated(state: Registration, kpj_number: str, programs: Sequence[Program], *, employer_name: str | None = None) -> AccountActivated:
    p = state.participant
    require(p is not None, "an activated account has its participant")
    return AccountActivated(
        participant_id=p.participant_id,
        category=p.category,
        kpj_number=kpj_number,
        digital_card_id=digital_card_id(p.participant_id),
        programs=list(programs),
        employer_name=employer_name,
        full_name=p.full_name,
        email=p.email,
        phone=p.phone,
        notification_channel=p.otp_channel,
    )


def payment(command: RecordContributionPayment, state: Registration, context: Context) -> Sequence[Event]:
    """The payment channel's report. Money was taken, so a refused payment is recorded as
    ContributionPaymentRejected (for refund / review), except a transaction seen before: a no-op."""
    if command.provider_transaction_id in state.payment_transactions:
        return []
    due = state.assessment.amount_due if state.assessment is not None else None

    def refuse(code: PaymentRejectionReason, reason: str) -> list[Event]:
        return [
            ContributionPaymentRejected(
                participant_id=state.participant_id,
                payment_reference=command.payment_reference,
                amount=command.amount,
                amount_due=due,
                channel=command.channel,
                provider=command.provider,
                provider_transaction_id=command.provider_transaction_id,
                reason_code=code,
                reason=reason,
            )
        ]

    if state.status is Status.NEW:
        return refuse(PaymentRejectionReason.UNKNOWN_REFERENCE, "No registration is known for this payment reference")
    if state.status in CLOSED:
        return refuse(PaymentRejectionReason.REGISTRATION_CLOSED, f"The registration is {state.status.lower()}; the payment is to be refunded")
    if state.assessment is None:
        return refuse(PaymentRejectionReason.NOT_ASSESSED, "No contribution has been assessed for this registration")
    if command.payment_reference != state.assessment.payment_reference:
        return refuse(PaymentRejectionReason.UNKNOWN_REFERENCE, "The payment reference is not the one billed for this registration")
    if state.paid is not None:
        return refuse(PaymentRejectionReason.ALREADY_PAID, "The first contribution was paid already; the payment is to be refunded")
    if command.amount != state.assessment.amount_due:
        return refuse(PaymentRejectionReason.AMOUNT_MISMATCH, f"Paid Rp {command.amount:,} but Rp {state.assessment.amount_due:,} is due")
    activation = context.facts_as(Activation)
    if activation.nik_claimed_elsewhere:
        text = "Akun JMO untuk NIK ini sudah aktif melalui pendaftaran lain; pembayaran akan dikembalikan"
        return [*refuse(PaymentRejectionReason.ALREADY_REGISTERED, text), _already_registered(state)]
    kpj_number = activation.kpj_number
    if not (isinstance(kpj_number, str) and is_valid_kpj(kpj_number)):
        raise Rejection("KPJ_NUMBER_UNAVAILABLE", "no valid KPJ number was reserved for the activation; report the payment again")
    paid = ContributionPaid(
        participant_id=state.assessment.participant_id,
        payment_reference=command.payment_reference,
        amount=command.amount,
        paid_at=command.paid_at,
        channel=command.channel,
        provider=command.provider,
        provider_transaction_id=command.provider_transaction_id,
    )
    return [paid, _activated(state, kpj_number, [p.program for p in state.assessment.programs])]


def expire(command: ExpireRegistration, state: Registration, context: Context) -> Sequence[Event]:
    """Ends an unfinished registration once the configured time since registering has passed."""
    stage = WAITING_FOR.get(state.status)
    if stage is None or state.participant_id is None:
        return []  # nothing started, already active, or closed
    timeout = context.facts_as(Expiry).registration_timeout
    require(isinstance(timeout, timedelta) and timeout > timedelta(0), "registration_timeout must be a positive duration")
    if context.now - command.registered_at < timeout:
        return []
    return [RegistrationExpired(participant_id=state.participant_id, stage=stage, timeout_seconds=max(1, int(timeout.total_seconds())))]


# --- evolve ----------------------------------------------------------------------------------


def evolve(state: Registration, event: Message) -> Registration:
    match event:
        case ParticipantRegistered():
            return replace(state, status=Status.NIK_VERIFICATION, participant_id=event.participant_id, participant=event)
        case RegistrationNikConfirmed():
            return replace(state, status=Status.OTP_VERIFICATION)
        case RegistrationContactConfirmed():
            return replace(state, status=Status.EMPLOYMENT_DETAILS)
        case EmploymentDetailsRecorded():
            return replace(state, employment=event)
        case ContributionAssessed():
            return replace(state, status=Status.PAYMENT, assessment=event)
        case EmployerMembershipCheckDeferred():
            return replace(state, status=Status.EMPLOYER_MEMBERSHIP, membership_attempts=event.attempt)
        case ContributionPaid():
            return replace(state, paid=event, payment_transactions=state.payment_transactions | {event.provider_transaction_id})
        case ContributionPaymentRejected():
            return replace(state, payment_transactions=state.payment_transactions | {event.provider_transaction_id})
        case AccountActivated():
            return replace(state, status=Status.ACTIVE, activated=event)
        case RegistrationRejected():
            return replace(state, status=Status.REJECTED, rejection=event.reason_code)
        case RegistrationExpired():
            return replace(state, status=Status.EXPIRED)
    return state  # EmployerMembershipFound / NotFound are followed by the event that moves the stage


registration = Decider(initial_state=Registration(), decide=decide, evolve=evolve)
