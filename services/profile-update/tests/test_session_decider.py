"""The pengkinian-data session decider: the seven steps in order, each refusal with its reason code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jmo_contracts import Event
from jmo_contracts.biometric import SelfieMatched, SelfieRejected, SelfieRejectionReason
from jmo_contracts.identity import OtpPurpose, OtpVerified
from jmo_contracts.profile_update import (
    ConfirmParticipationData,
    ConfirmProfileUpdate,
    ExpireProfileUpdate,
    StartProfileUpdate,
    SubmitAdditionalData,
    SubmitContactData,
    SubmitPopulationData,
)
from jmo_profile_update.domain.session import Session, SessionFacts, Step, session
from jmo_runtime import Context, Rejection

pytestmark = pytest.mark.unit

PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
OTHER = "0" * 31 + "1"
SID = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"
MSG = "ab" * 16
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)  #: the service's default (JMO_PROFILE_SESSION_TIMEOUT_SECONDS)
PROFILE = {
    "_id": PID, "participant_id": PID, "status": "ACTIVE", "nik": "3201014508900001", "kpj_number": "26112100042", "full_name": "SITI AMINAH",
    "gender": "F", "email": "siti@example.com", "phone": "+6281234567890", "notification_channel": "email",
}
ADDRESS = {"street": "Jl. Contoh Raya No. 12", "rt": "003", "rw": "005", "village": "Sukamaju", "district": "Cibinong", "city": "Kabupaten Bogor", "province": "Jawa Barat", "postal_code": "16911"}
CONTACT = {"phone": "081234567890", "email": "siti@example.com", "npwp": "3201014508900001", "bank_name": "bni", "bank_account_number": "0123456789"}
POPULATION = {"gender": "F", "mother_maiden_name": "Nurhasanah", "address": ADDRESS, "marital_status": "KAWIN"}
ADDITIONAL = {"last_education": "SMA", "blood_type": "O", "religion": "ISLAM", "emergency_contact_name": "Ahmad Fauzi", "emergency_contact_phone": "081398765432"}


def ids(**extra: Any) -> dict[str, Any]:
    return {"participant_id": PID, "session_id": SID, **extra}


def decide(message: Any, events: Sequence[Event], *, now: datetime = T0, profile: Any = PROFILE) -> list[Event]:
    state = session.fold(events)
    return list(session.decide(message, state, Context(now=now, stream_id=f"profile-update-{SID}", facts=SessionFacts(profile, TIMEOUT), message_id=MSG)))


def run(*messages: Any, now: datetime = T0, profile: Any = PROFILE) -> list[Event]:
    """Decide each message in turn on the events so far; return all events."""
    events: list[Event] = []
    for m in messages:
        events += decide(m, events, now=now, profile=profile)
    return events


def reason(message: Any, events: Sequence[Event], **kw: Any) -> str:
    with pytest.raises(Rejection) as r:
        decide(message, events, **kw)
    return r.value.reason_code


def matched() -> SelfieMatched:
    return SelfieMatched(participant_id=PID, session_id=SID, attempt=1, distance=0.4, threshold=0.6, engine="face_recognition", model_version="v1", reference_source="DUKCAPIL")


def until(step: Step, **contact: Any) -> list[Event]:
    script = [StartProfileUpdate(**ids()), ConfirmParticipationData(**ids(confirmed=True)), matched(), SubmitContactData(**ids(**(CONTACT | contact))),
              SubmitPopulationData(**ids(**POPULATION)), SubmitAdditionalData(**ids(**ADDITIONAL))]
    order = [Step.STARTED, Step.PARTICIPATION_CONFIRMED, Step.SELFIE_VERIFIED, Step.CONTACT_SUBMITTED, Step.POPULATION_SUBMITTED, Step.ADDITIONAL_SUBMITTED]
    events = run(*script[: order.index(step) + 1])
    assert session.fold(events).step is step
    return events


def test_the_happy_path_ends_in_profile_updated_listing_only_what_changed() -> None:
    events = until(Step.ADDITIONAL_SUBMITTED)
    [updated] = decide(ConfirmProfileUpdate(**ids(terms_accepted=True)), events)
    assert updated.TYPE == "ProfileUpdated"
    # phone and email are unchanged, so they are not listed; NPWP, bank and the rest are new
    assert "phone" not in updated.changed_fields and "email" not in updated.changed_fields
    assert {"npwp", "bank_name", "bank_account_number", "address", "blood_type", "emergency_contact_phone"} <= set(updated.changed_fields)
    assert updated.new_values.bank_name == "BNI" and updated.new_values.emergency_contact_phone == "+6281398765432"
    assert updated.new_values.mother_maiden_name == "NURHASANAH"
    assert (updated.contact_email, updated.notification_channel) == ("siti@example.com", "email")


def test_only_an_active_account_may_start() -> None:
    assert reason(StartProfileUpdate(**ids()), [], profile=PROFILE | {"status": "REGISTERED"}) == "ACCOUNT_NOT_ACTIVE"
    assert reason(StartProfileUpdate(**ids()), [], profile=None) == "UNKNOWN_PARTICIPANT"


def test_another_participants_commands_on_a_session_are_refused() -> None:
    events = until(Step.STARTED)
    assert reason(ConfirmParticipationData(participant_id=OTHER, session_id=SID, confirmed=True), events) == "NOT_YOUR_SESSION"
    assert reason(StartProfileUpdate(participant_id=OTHER, session_id=SID), events) == "NOT_YOUR_SESSION"
    assert reason(StartProfileUpdate(**ids()), events) == "SESSION_ALREADY_STARTED"


def test_a_command_for_a_session_never_started_is_refused() -> None:
    assert reason(ConfirmParticipationData(**ids(confirmed=True)), []) == "SESSION_NOT_FOUND"


@pytest.mark.parametrize(
    ("at", "command", "code"),
    [
        (Step.STARTED, SubmitContactData(**ids(**CONTACT)), "STEP_OUT_OF_ORDER"),
        (Step.PARTICIPATION_CONFIRMED, SubmitContactData(**ids(**CONTACT)), "SELFIE_NOT_VERIFIED"),
        (Step.SELFIE_VERIFIED, SubmitPopulationData(**ids(**POPULATION)), "STEP_OUT_OF_ORDER"),
        (Step.CONTACT_SUBMITTED, ConfirmProfileUpdate(**ids(terms_accepted=True)), "STEP_OUT_OF_ORDER"),
        (Step.POPULATION_SUBMITTED, SubmitContactData(**ids(**CONTACT)), "STEP_ALREADY_COMPLETED"),
    ],
)
def test_steps_run_in_order(at: Step, command: Any, code: str) -> None:
    assert reason(command, until(at)) == code


def test_a_selfie_match_that_overtakes_the_participation_confirmation_is_kept_for_it() -> None:
    events = until(Step.STARTED)
    [recorded] = decide(matched(), events)  # the biometric service decided before this session saw the confirmation
    assert recorded.TYPE == "SelfieVerificationRecorded" and session.fold(events + [recorded]).step is Step.STARTED
    assert decide(matched(), events + [recorded]) == []  # a second verdict changes nothing
    events += [recorded, *decide(ConfirmParticipationData(**ids(confirmed=True)), events + [recorded])]
    assert session.fold(events).step is Step.SELFIE_VERIFIED
    assert [e.TYPE for e in decide(SubmitContactData(**ids(**CONTACT)), events)] == ["ContactDataSubmitted"]


def test_an_early_selfie_match_does_not_skip_a_disputed_participation_confirmation() -> None:
    events = until(Step.STARTED)
    events += decide(matched(), events)
    [cancelled] = decide(ConfirmParticipationData(**ids(confirmed=False)), events)
    assert cancelled.TYPE == "ProfileUpdateCancelled"


def test_a_selfie_decision_before_the_session_started_is_ignored() -> None:
    assert decide(matched(), []) == []


def test_the_last_rejected_selfie_cancels_the_session_and_earlier_ones_do_not() -> None:
    events = until(Step.PARTICIPATION_CONFIRMED)
    rejected = SelfieRejected(participant_id=PID, session_id=SID, attempt=1, reason_code=SelfieRejectionReason.TOO_DARK, reason="gelap", attempts_left=2)
    assert decide(rejected, events) == []
    [cancelled] = decide(rejected.model_copy(update={"attempt": 3, "attempts_left": 0}), events)
    assert (cancelled.TYPE, cancelled.reason_code) == ("ProfileUpdateCancelled", "SELFIE_ATTEMPTS_EXHAUSTED")
    assert reason(SubmitContactData(**ids(**CONTACT)), events + [cancelled]) == "SESSION_CLOSED"


def test_disputed_participation_data_ends_the_session() -> None:
    [cancelled] = decide(ConfirmParticipationData(**ids(confirmed=False)), until(Step.STARTED))
    assert cancelled.reason_code == "PARTICIPATION_DATA_DISPUTED"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"npwp": "12345678901234"}, "INVALID_NPWP"),
        ({"npwp": "1234567890123456789"}, "INVALID_NPWP"),
        ({"phone": "0212345678"}, "INVALID_PHONE"),
        ({"email": "not-an-email"}, "INVALID_EMAIL"),
        ({"bank_name": "BANK ANTAH BERANTAH"}, "UNKNOWN_BANK"),
        ({"bank_account_number": "12345"}, "INVALID_BANK_ACCOUNT"),
        ({"passport_number": "X1"}, "INVALID_PASSPORT"),
    ],
)
def test_contact_fields_are_validated_with_a_reason_code(change: dict[str, str], code: str) -> None:
    assert reason(SubmitContactData(**ids(**(CONTACT | change))), until(Step.SELFIE_VERIFIED)) == code


def test_npwp_with_dots_is_accepted_and_a_missing_one_warns() -> None:
    [with_dots] = decide(SubmitContactData(**ids(**(CONTACT | {"npwp": "09.254.294.3-407.000"}))), until(Step.SELFIE_VERIFIED))
    assert (with_dots.npwp, with_dots.npwp_missing_warning) == ("092542943407000", False)
    [without] = decide(SubmitContactData(**ids(**(CONTACT | {"npwp": None}))), until(Step.SELFIE_VERIFIED))
    assert without.npwp_missing_warning is True


def test_population_gender_must_match_the_nik() -> None:
    assert reason(SubmitPopulationData(**ids(**(POPULATION | {"gender": "M"}))), until(Step.CONTACT_SUBMITTED)) == "GENDER_MISMATCH"


def test_the_emergency_contact_is_not_the_participants_own_phone() -> None:
    own = SubmitAdditionalData(**ids(**(ADDITIONAL | {"emergency_contact_phone": "+62 812-3456-7890"})))
    assert reason(own, until(Step.POPULATION_SUBMITTED)) == "EMERGENCY_CONTACT_IS_OWN_PHONE"


def test_terms_must_be_accepted() -> None:
    assert reason(ConfirmProfileUpdate(**ids(terms_accepted=False)), until(Step.ADDITIONAL_SUBMITTED)) == "TERMS_NOT_ACCEPTED"


def otp_verified(channel: str, destination: str, *, session_id: str = SID, purpose: OtpPurpose = OtpPurpose.CONTACT_CHANGE) -> OtpVerified:
    return OtpVerified(participant_id=PID, otp_id="9" * 32, purpose=purpose, channel=channel, destination=destination, profile_update_session_id=session_id, attempts=1)


def test_a_changed_phone_needs_its_otp_before_confirmation() -> None:
    events = until(Step.ADDITIONAL_SUBMITTED, phone="081299998888")
    assert session.fold(events).contact.verification_required == ["sms"]
    assert reason(ConfirmProfileUpdate(**ids(terms_accepted=True)), events) == "CONTACT_NOT_VERIFIED"
    # an OTP for another number, another purpose or the old number does not count
    assert decide(otp_verified("sms", "+6281234567890"), events) == []
    assert decide(otp_verified("sms", "+6281299998888", purpose=OtpPurpose.REGISTRATION), events) == []
    [verified] = decide(otp_verified("sms", "+6281299998888"), events)
    assert (verified.TYPE, verified.channel, verified.source_message_id) == ("ContactChangeVerified", "sms", MSG)
    [updated] = decide(ConfirmProfileUpdate(**ids(terms_accepted=True)), events + [verified])
    assert "phone" in updated.changed_fields and updated.new_values.phone == "+6281299998888" and updated.contact_phone == "+6281299998888"


def test_each_step_moves_the_inactivity_deadline_and_an_inactive_session_expires() -> None:
    events = run(StartProfileUpdate(**ids()), now=T0)
    assert session.fold(events).expires_at == T0 + timedelta(minutes=30)
    events += decide(ConfirmParticipationData(**ids(confirmed=True)), events, now=T0 + timedelta(minutes=20))
    assert session.fold(events).expires_at == T0 + timedelta(minutes=50)
    # the scheduler's expiry before the deadline changes nothing; after it, the session expires
    assert decide(ExpireProfileUpdate(**ids()), events, now=T0 + timedelta(minutes=49)) == []
    [expired] = decide(ExpireProfileUpdate(**ids()), events, now=T0 + timedelta(minutes=50))
    assert (expired.TYPE, expired.last_step) == ("ProfileUpdateExpired", "PARTICIPATION_CONFIRMED")
    assert decide(matched(), events + [expired]) == []
    assert reason(ConfirmProfileUpdate(**ids(terms_accepted=True)), events + [expired]) == "SESSION_EXPIRED"


def test_a_command_arriving_after_the_deadline_records_the_expiry_and_is_refused() -> None:
    events = until(Step.STARTED)
    expired, refusal = decide(ConfirmParticipationData(**ids(confirmed=True)), events, now=T0 + timedelta(hours=1))
    assert expired.TYPE == "ProfileUpdateExpired"
    assert (refusal.TYPE, refusal.reason_code, refusal.command_id) == ("CommandRejected", "SESSION_EXPIRED", MSG)
    assert session.fold(events + [expired]).step is Step.EXPIRED


def test_folding_starts_from_an_empty_session() -> None:
    assert session.fold([]) == Session()
