"""The registration decider, given / when / then: one test per rule and per refusal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Any

import pytest

from jmo_contracts import Event, Message
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import NikRejected, NikVerified, OtpPurpose, OtpVerified
from jmo_contracts.registration import (
    AccountActivated,
    ContributionAssessed,
    ContributionPaid,
    ContributionPaymentRejected,
    EmployerMembershipCheckDeferred,
    EmployerMembershipFound,
    EmployerMembershipNotFound,
    EmploymentDetailsRecorded,
    ExpireRegistration,
    ParticipantRegistered,
    PaymentRejectionReason,
    ProvideEmploymentDetails,
    RecordContributionPayment,
    RegisterParticipant,
    RegistrationContactConfirmed,
    RegistrationExpired,
    RegistrationNikConfirmed,
    RegistrationRejected,
    RegistrationStage,
    RetryEmployerMembershipCheck,
)
from jmo_registration.domain.contributions import RateTables
from jmo_registration.domain.kpj import kpj_candidates
from jmo_registration.domain.registration import (
    UNAVAILABLE,
    Activation,
    Applicant,
    Expiry,
    MembershipCheck,
    Rates,
    Registration,
    Status,
    digital_card_id,
    payment_reference,
    registration,
)
from jmo_runtime import Context, InvariantBroken, Rejection

pytestmark = pytest.mark.unit

PID = "ab" * 16
STREAM = "registration-" + PID
NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
SOURCE_ID = "cd" * 16
KPJ = next(kpj_candidates(PID))
CONTEXT = Context(now=NOW, stream_id=STREAM, facts=Applicant(nik_has_active_account=False, too_many_attempts=False))
MEMBERSHIP = {
    "kpj_number": "24012345678",
    "employer_npp": "NN012345",
    "employer_name": "PT Contoh Sejahtera Abadi",
    "member_since": date(2023, 2, 1),
    "programs": ["JKK", "JKM", "JHT", "JP"],
    "active": True,
}
PLACEMENT = {"destination_country": "MY", "placement_start": "2027-01-15", "placement_end": "2029-01-14"}


# --- helpers ---------------------------------------------------------------------------------


def facts_for(message: Message, state: Registration, **given: Any) -> object:
    """The facts the application would look up for ``message``, as ``given`` (the rest: nothing found)."""
    claimed = given.get("nik_claimed_elsewhere", False)
    pu = state.participant is not None and state.participant.category is Category.PU
    match message:
        case RegisterParticipant():
            return Applicant(nik_has_active_account=given.get("nik_has_active_account", False), too_many_attempts=given.get("too_many_attempts", False))
        case RetryEmployerMembershipCheck() | ProvideEmploymentDetails() if pu:
            return MembershipCheck(given.get("employer_membership", UNAVAILABLE), claimed, given.get("membership_retry_step", timedelta(minutes=1)))
        case ProvideEmploymentDetails():
            return Rates(given.get("rate_tables", RateTables.packaged()))
        case RecordContributionPayment():
            return Activation(kpj_number=given.get("kpj_number"), nik_claimed_elsewhere=claimed)
        case ExpireRegistration():
            return Expiry(given.get("registration_timeout", timedelta(hours=24)))
    return None


def decide(message: Message, state: Registration, *, now: datetime = NOW, **facts: Any) -> Sequence[Event]:
    return registration.decide(message, state, Context(now=now, stream_id=STREAM, facts=facts_for(message, state, **facts), message_id=SOURCE_ID))


def fold(state: Registration, events: Sequence[Message]) -> Registration:
    return reduce(registration.evolve, events, state)


def refusal(message: Message, state: Registration, **facts: Any) -> str:
    with pytest.raises(Rejection) as info:
        decide(message, state, **facts)
    return info.value.reason_code


def a_command(**changes: object) -> RegisterParticipant:
    data = {"category": "BPU", "nik": "3201014508900001", "full_name": " siti  aminah ", "email": "Siti@Example.com", "phone": "081234567890", "otp_channel": "email"} | changes
    return RegisterParticipant.model_validate(data)


def nik_verified() -> NikVerified:
    return NikVerified(participant_id=PID, registration_stream_id=STREAM, attempts=1)


def nik_rejected(code: str = "DUKCAPIL_MISMATCH") -> NikRejected:
    return NikRejected.model_validate({"participant_id": PID, "registration_stream_id": STREAM, "reason_code": code, "reason": "Data tidak sesuai"})


def otp_verified(**changes: object) -> OtpVerified:
    data = {"participant_id": PID, "otp_id": "ef" * 16, "purpose": "REGISTRATION", "channel": "email", "destination": "siti@example.com", "attempts": 1} | changes
    return OtpVerified.model_validate(data)


def details(**changes: object) -> ProvideEmploymentDetails:
    data = {"occupation": "Pedagang keliling", "monthly_income": 2_500_000, "join_jht": True} | changes
    return ProvideEmploymentDetails.model_validate(data)


def pmi_details(**changes: object) -> ProvideEmploymentDetails:
    return details(**({"occupation": "Perawat lansia", "join_jht": True, "jht_monthly_amount": 100_000, "placement": PLACEMENT} | changes))


def pu_details(**changes: object) -> ProvideEmploymentDetails:
    return details(**({"occupation": "Staf gudang", "employer_name": "PT Contoh", "join_jht": False, "monthly_income": 5_000_000} | changes))


def a_payment(**changes: object) -> RecordContributionPayment:
    data = {
        "payment_reference": payment_reference(Category.BPU, PID),
        "amount": 81_800,
        "paid_at": "2026-11-21T09:05:12Z",
        "channel": "VIRTUAL_ACCOUNT",
        "provider": "BNI",
        "provider_transaction_id": "BNI-VA-1",
    } | changes
    return RecordContributionPayment.model_validate(data)


def expiry(registered_at: datetime = NOW) -> ExpireRegistration:
    return ExpireRegistration(registered_at=registered_at)


def registered(category: str = "BPU") -> Registration:
    state = registration.initial_state
    return fold(state, decide(a_command(category=category), state))


def nik_confirmed(category: str = "BPU") -> Registration:
    state = registered(category)
    return fold(state, decide(nik_verified(), state))


def contact_confirmed(category: str = "BPU") -> Registration:
    state = nik_confirmed(category)
    return fold(state, decide(otp_verified(), state))


def assessed(command: ProvideEmploymentDetails | None = None, category: str = "BPU") -> Registration:
    state = contact_confirmed(category)
    return fold(state, decide(command or details(), state))


def pu_deferred() -> Registration:
    state = contact_confirmed("PU")
    return fold(state, decide(pu_details(), state, employer_membership="UNAVAILABLE"))


def rejected() -> Registration:
    state = registered()
    return fold(state, decide(nik_rejected(), state))


def expired() -> Registration:
    state = registered()
    return fold(state, decide(expiry(), state, now=NOW + timedelta(days=1)))


def active() -> Registration:
    state = assessed()
    return fold(state, decide(a_payment(), state, kpj_number=KPJ))


# --- 1. RegisterParticipant ------------------------------------------------------------------


def test_a_valid_registration_records_the_normalised_participant() -> None:
    [event] = registration.decide(a_command(), registration.initial_state, CONTEXT)
    assert isinstance(event, ParticipantRegistered)
    assert (event.full_name, event.email, event.phone, event.gender, str(event.birth_date)) == ("SITI AMINAH", "siti@example.com", "+6281234567890", "F", "1990-08-05")
    assert event.participant_id == "ab" * 16


def test_the_participant_waits_for_nik_verification_after_registering() -> None:
    events = registration.decide(a_command(), registration.initial_state, CONTEXT)
    state = registration.fold(events)
    assert (state.status, state.participant_id, state.participant) == (Status.NIK_VERIFICATION, PID, events[0])


def test_a_second_registration_on_the_same_stream_is_refused() -> None:
    assert refusal(a_command(), registered()) == "REGISTRATION_ALREADY_STARTED"


@pytest.mark.parametrize(("field", "value", "code"), [("nik", "123", "INVALID_NIK"), ("full_name", "R2D2", "INVALID_NAME"), ("email", "nope", "INVALID_EMAIL"), ("phone", "021555", "INVALID_PHONE")])
def test_invalid_input_is_refused_with_its_reason_and_nothing_is_recorded(field: str, value: str, code: str) -> None:
    with pytest.raises(Rejection) as info:
        registration.decide(a_command(**{field: value}), registration.initial_state, CONTEXT)
    assert info.value.reason_code == code


def test_a_nik_with_an_active_account_is_refused_so_that_the_user_logs_in() -> None:
    with pytest.raises(Rejection) as info:
        decide(a_command(), registration.initial_state, nik_has_active_account=True)
    assert info.value.reason_code == "ALREADY_REGISTERED"
    assert "log in" in info.value.reason


def test_too_many_registrations_of_a_nik_are_refused_before_anything_tells_whether_it_has_an_account() -> None:
    with pytest.raises(Rejection) as info:
        decide(a_command(), registration.initial_state, nik_has_active_account=True, too_many_attempts=True)
    assert info.value.reason_code == "TOO_MANY_ATTEMPTS"  # not ALREADY_REGISTERED: the answer is not an oracle


def test_a_nik_without_an_active_account_registers() -> None:
    [event] = decide(a_command(), registration.initial_state, nik_has_active_account=False)
    assert isinstance(event, ParticipantRegistered)


# --- 2. NIK verification (identity's Dukcapil answer) ----------------------------------------


def test_nik_verified_confirms_the_nik_citing_identitys_event() -> None:
    assert decide(nik_verified(), registered()) == [RegistrationNikConfirmed(participant_id=PID, source_message_id=SOURCE_ID)]


def test_after_the_nik_is_confirmed_the_registration_waits_for_the_otp() -> None:
    assert nik_confirmed().status is Status.OTP_VERIFICATION


@pytest.mark.parametrize(("identity_code", "registration_code"), [("DUKCAPIL_MISMATCH", "NIK_MISMATCH"), ("NOT_FOUND", "NIK_NOT_FOUND")])
def test_nik_rejected_rejects_the_registration_with_the_matching_reason(identity_code: str, registration_code: str) -> None:
    [event] = decide(nik_rejected(identity_code), registered())
    assert isinstance(event, RegistrationRejected)
    assert event.reason_code == registration_code
    assert "tidak dapat dilanjutkan" in event.reason


def test_a_nik_rejection_closes_the_registration() -> None:
    assert rejected().status is Status.REJECTED


def test_a_repeated_nik_answer_is_ignored() -> None:
    assert decide(nik_verified(), nik_confirmed()) == []
    assert decide(nik_rejected(), nik_confirmed()) == []


def test_a_nik_answer_for_another_participant_is_ignored() -> None:
    other = NikVerified(participant_id="01" * 16, registration_stream_id="registration-" + "01" * 16, attempts=1)
    assert decide(other, registered()) == []


def test_a_nik_answer_before_any_registration_is_ignored() -> None:
    assert decide(nik_verified(), registration.initial_state) == []


def test_a_nik_answer_without_its_message_id_is_refused() -> None:
    with pytest.raises(Rejection) as info:
        registration.decide(nik_verified(), registered(), CONTEXT)
    assert info.value.reason_code == "SOURCE_MESSAGE_ID_MISSING"


# --- 3. OTP ----------------------------------------------------------------------------------


def test_a_verified_registration_otp_confirms_the_contact() -> None:
    assert decide(otp_verified(), nik_confirmed()) == [RegistrationContactConfirmed(participant_id=PID, channel=OtpChannel.EMAIL, source_message_id=SOURCE_ID)]


def test_after_the_contact_is_confirmed_the_registration_waits_for_employment_details() -> None:
    assert contact_confirmed().status is Status.EMPLOYMENT_DETAILS


def test_a_verified_sms_otp_to_the_registered_phone_confirms_the_contact() -> None:
    [event] = decide(otp_verified(channel="sms", destination="+6281234567890"), nik_confirmed())
    assert isinstance(event, RegistrationContactConfirmed)
    assert event.channel is OtpChannel.SMS


def test_an_otp_verified_before_the_nik_is_confirmed_is_ignored() -> None:
    assert decide(otp_verified(), registered()) == []


@pytest.mark.parametrize(
    "otp",
    [
        pytest.param(otp_verified(purpose=OtpPurpose.CONTACT_CHANGE, profile_update_session_id="12" * 16), id="other purpose"),
        pytest.param(otp_verified(destination="someone.else@example.com"), id="other destination"),
        pytest.param(otp_verified(participant_id="01" * 16), id="other participant"),
    ],
)
def test_an_otp_that_does_not_verify_the_registered_contact_is_ignored(otp: OtpVerified) -> None:
    assert decide(otp, nik_confirmed()) == []


def test_a_repeated_otp_verification_is_ignored() -> None:
    assert decide(otp_verified(), contact_confirmed()) == []


# --- 4. Employment details -------------------------------------------------------------------


def test_employment_details_before_registering_are_refused() -> None:
    assert refusal(details(), registration.initial_state) == "NOT_REGISTERED"


def test_employment_details_before_the_nik_is_confirmed_are_refused() -> None:
    assert refusal(details(), registered()) == "NIK_NOT_CONFIRMED"


def test_employment_details_before_the_contact_is_confirmed_are_refused() -> None:
    assert refusal(details(), nik_confirmed()) == "CONTACT_NOT_CONFIRMED"


def test_bpu_details_are_recorded_and_the_first_contribution_assessed_from_the_rate_table() -> None:
    recorded, assessment = decide(details(occupation="  Pedagang   keliling "), contact_confirmed())
    assert isinstance(recorded, EmploymentDetailsRecorded)
    assert (recorded.category, recorded.occupation, recorded.monthly_income, recorded.join_jht) == (Category.BPU, "Pedagang keliling", 2_500_000, True)
    assert isinstance(assessment, ContributionAssessed)
    assert [(p.program, p.amount) for p in assessment.programs] == [("JKK", 25_000), ("JKM", 6_800), ("JHT", 50_000)]
    assert assessment.amount_due == 81_800
    assert assessment.payment_reference == "JMO-BPU-ABABABABAB"
    assert (assessment.rate_table_id, assessment.rate_table_effective_from) == ("jmo-contribution-rates", date(2025, 1, 1))


def test_the_cheapest_bpu_package_is_jkk_and_jkm() -> None:
    _, assessment = decide(details(monthly_income=900_000, join_jht=False), contact_confirmed())
    assert isinstance(assessment, ContributionAssessed)
    assert assessment.amount_due == 16_800


def test_rates_come_from_the_rate_tables_in_the_facts() -> None:
    tables = RateTables.packaged()
    cheaper = tables.versions[0].model_copy(update={"bpu": tables.versions[0].bpu.model_copy(update={"jkm_monthly_amount": 1_000})})
    _, assessment = decide(details(join_jht=False), contact_confirmed(), rate_tables=RateTables((cheaper,)))
    assert isinstance(assessment, ContributionAssessed)
    assert assessment.amount_due == 26_000


def test_after_the_assessment_the_registration_waits_for_payment() -> None:
    state = assessed()
    assert state.status is Status.PAYMENT
    assert state.assessment is not None and state.assessment.amount_due == 81_800


def test_pmi_details_record_the_placement_and_assess_the_package_with_the_chosen_jht() -> None:
    recorded, assessment = decide(pmi_details(), contact_confirmed("PMI"))
    assert isinstance(recorded, EmploymentDetailsRecorded)
    assert recorded.placement is not None and recorded.placement.destination_country == "MY"
    assert isinstance(assessment, ContributionAssessed)
    assert [(p.program, p.amount, p.period) for p in assessment.programs][-1] == ("JHT", 100_000, "MONTHLY")
    assert assessment.amount_due == 470_000
    assert assessment.payment_reference == "JMO-PMI-ABABABABAB"


@pytest.mark.parametrize(
    ("category", "command", "code"),
    [
        pytest.param("PMI", details(join_jht=False), "PLACEMENT_REQUIRED", id="PMI without placement"),
        pytest.param("PMI", pmi_details().model_copy(update={"placement": pmi_details().placement.model_copy(update={"placement_end": date(2027, 1, 15)})}), "INVALID_PLACEMENT_PERIOD", id="PMI placement ends when it starts"),  # type: ignore[union-attr]
        pytest.param("PMI", details(join_jht=False, placement={**PLACEMENT, "placement_start": "2024-01-01", "placement_end": "2025-12-31"}), "PLACEMENT_ENDED", id="PMI placement over"),
        pytest.param("PMI", details(join_jht=True, placement=PLACEMENT), "JHT_AMOUNT_REQUIRED", id="PMI JHT without amount"),
        pytest.param("PMI", details(join_jht=True, jht_monthly_amount=700_000, placement=PLACEMENT), "JHT_AMOUNT_OUT_OF_RANGE", id="PMI JHT too high"),
        pytest.param("PMI", details(employer_name="PT Contoh", placement=PLACEMENT, join_jht=False), "EMPLOYER_NAME_NOT_APPLICABLE", id="PMI with employer"),
        pytest.param("BPU", details(placement=PLACEMENT), "PLACEMENT_NOT_APPLICABLE", id="BPU with placement"),
        pytest.param("BPU", details(employer_name="PT Contoh"), "EMPLOYER_NAME_NOT_APPLICABLE", id="BPU with employer"),
        pytest.param("BPU", details(jht_monthly_amount=100_000), "JHT_AMOUNT_NOT_APPLICABLE", id="BPU chooses a JHT amount"),
        pytest.param("BPU", details(occupation="   "), "INVALID_OCCUPATION", id="blank occupation"),
        pytest.param("PU", pu_details(placement=PLACEMENT), "PLACEMENT_NOT_APPLICABLE", id="PU with placement"),
        pytest.param("PU", pu_details(join_jht=True), "PROGRAM_CHOICE_NOT_APPLICABLE", id="PU chooses JHT"),
    ],
)
def test_employment_details_breaking_a_category_rule_are_refused(category: str, command: ProvideEmploymentDetails, code: str) -> None:
    assert refusal(command, contact_confirmed(category), employer_membership=MEMBERSHIP) == code


def test_the_same_details_again_while_payment_is_due_change_nothing() -> None:
    assert decide(details(), assessed()) == []


def test_different_details_while_payment_is_due_are_refused() -> None:
    assert refusal(details(join_jht=False), assessed()) == "EMPLOYMENT_DETAILS_ALREADY_RECORDED"


def test_a_pu_worker_with_an_active_membership_is_activated_with_the_employers_kpj_number() -> None:
    recorded, found, activated = decide(pu_details(), contact_confirmed("PU"), employer_membership=MEMBERSHIP)
    assert isinstance(recorded, EmploymentDetailsRecorded) and recorded.employer_name == "PT Contoh"
    assert isinstance(found, EmployerMembershipFound)
    assert (found.kpj_number, found.employer_npp, found.member_since) == ("24012345678", "NN012345", date(2023, 2, 1))
    assert isinstance(activated, AccountActivated)
    assert (activated.kpj_number, activated.employer_name, activated.programs) == ("24012345678", "PT Contoh Sejahtera Abadi", ["JKK", "JKM", "JHT", "JP"])


def test_a_membership_object_from_the_registry_port_is_accepted_too() -> None:
    from jmo_registries.ports import Membership

    membership = Membership(**{**MEMBERSHIP, "programs": ("JKK", "JKM")})
    *_, activated = decide(pu_details(), contact_confirmed("PU"), employer_membership=membership)
    assert isinstance(activated, AccountActivated) and activated.programs == ["JKK", "JKM"]


@pytest.mark.parametrize(
    ("membership", "problem", "reason"),
    [(None, "NOT_FOUND", "EMPLOYER_MEMBERSHIP_NOT_FOUND"), ({**MEMBERSHIP, "active": False}, "MEMBERSHIP_INACTIVE", "EMPLOYER_MEMBERSHIP_INACTIVE")],
    ids=["not found", "inactive"],
)
def test_a_pu_worker_without_an_active_membership_is_rejected(membership: object, problem: str, reason: str) -> None:
    state = contact_confirmed("PU")
    recorded, not_found, rejection = decide(pu_details(), state, employer_membership=membership)
    assert isinstance(recorded, EmploymentDetailsRecorded)
    assert isinstance(not_found, EmployerMembershipNotFound) and not_found.reason_code == problem
    assert isinstance(rejection, RegistrationRejected) and rejection.reason_code == reason
    assert fold(state, [recorded, not_found, rejection]).status is Status.REJECTED


def test_a_malformed_registry_answer_is_refused_and_nothing_is_recorded() -> None:
    assert refusal(pu_details(), contact_confirmed("PU"), employer_membership={**MEMBERSHIP, "kpj_number": "12"}) == "EMPLOYER_REGISTRY_INVALID_ANSWER"


def test_an_unreachable_employer_registry_defers_the_check_and_the_registration_waits() -> None:
    recorded, deferred = decide(pu_details(), contact_confirmed("PU"), employer_membership="UNAVAILABLE")
    assert isinstance(recorded, EmploymentDetailsRecorded)
    assert isinstance(deferred, EmployerMembershipCheckDeferred)
    assert (deferred.attempt, deferred.retry_at) == (1, NOW + timedelta(minutes=1))
    assert pu_deferred().status is Status.EMPLOYER_MEMBERSHIP


def test_each_further_deferral_waits_a_minute_longer_up_to_a_cap() -> None:
    state = pu_deferred()
    delays = []
    for attempt in range(1, 20):
        [deferred] = decide(RetryEmployerMembershipCheck(attempt=attempt), state, employer_membership="UNAVAILABLE")
        assert isinstance(deferred, EmployerMembershipCheckDeferred) and deferred.attempt == attempt + 1
        delays.append(deferred.retry_at - NOW)
        state = fold(state, [deferred])
    assert delays[:3] == [timedelta(minutes=2), timedelta(minutes=3), timedelta(minutes=4)]
    assert max(delays) == timedelta(minutes=15)


def test_a_retry_activates_once_the_registry_answers() -> None:
    found, activated = decide(RetryEmployerMembershipCheck(attempt=1), pu_deferred(), employer_membership=MEMBERSHIP)
    assert isinstance(found, EmployerMembershipFound) and isinstance(activated, AccountActivated)


def test_a_stale_retry_is_ignored() -> None:
    assert decide(RetryEmployerMembershipCheck(attempt=5), pu_deferred(), employer_membership=MEMBERSHIP) == []


def test_a_retry_when_nothing_is_deferred_is_ignored() -> None:
    assert decide(RetryEmployerMembershipCheck(attempt=1), contact_confirmed("PU"), employer_membership=MEMBERSHIP) == []


def test_the_same_details_again_while_deferred_retry_the_check_without_recording_them_again() -> None:
    found, activated = decide(pu_details(), pu_deferred(), employer_membership=MEMBERSHIP)
    assert isinstance(found, EmployerMembershipFound) and isinstance(activated, AccountActivated)


def test_corrected_details_while_deferred_are_recorded_and_checked() -> None:
    recorded, deferred = decide(pu_details(employer_name="PT Contoh Baru"), pu_deferred(), employer_membership="UNAVAILABLE")
    assert isinstance(recorded, EmploymentDetailsRecorded) and recorded.employer_name == "PT Contoh Baru"
    assert isinstance(deferred, EmployerMembershipCheckDeferred) and deferred.attempt == 2


def test_employment_details_after_activation_are_refused() -> None:
    assert refusal(details(), active()) == "ALREADY_ACTIVE"


# --- 5. Contribution payment -----------------------------------------------------------------


def test_the_exact_payment_to_the_billed_reference_activates_the_account() -> None:
    paid, activated = decide(a_payment(), assessed(), kpj_number=KPJ)
    assert isinstance(paid, ContributionPaid)
    assert (paid.amount, paid.provider_transaction_id, paid.payment_reference) == (81_800, "BNI-VA-1", "JMO-BPU-ABABABABAB")
    assert activated == AccountActivated(
        participant_id=PID,
        category=Category.BPU,
        kpj_number=KPJ,
        digital_card_id=digital_card_id(PID),
        programs=["JKK", "JKM", "JHT"],
        employer_name=None,
        full_name="SITI AMINAH",
        email="siti@example.com",
        phone="+6281234567890",
        notification_channel=OtpChannel.EMAIL,
    )


def test_the_account_is_active_after_payment() -> None:
    state = active()
    assert state.status is Status.ACTIVE
    assert state.activated is not None and state.activated.kpj_number == KPJ


def test_the_digital_card_id_is_the_same_for_the_same_participant() -> None:
    assert digital_card_id(PID) == digital_card_id(PID) != digital_card_id("01" * 16)


def _payment_rejection(events: Sequence[Event]) -> ContributionPaymentRejected:
    [event] = events
    assert isinstance(event, ContributionPaymentRejected)
    return event


@pytest.mark.parametrize("amount", [16_800, 100_000], ids=["underpaid", "overpaid"])
def test_a_payment_of_another_amount_is_rejected_with_the_amount_due(amount: int) -> None:
    event = _payment_rejection(decide(a_payment(amount=amount), assessed(), kpj_number=KPJ))
    assert (event.reason_code, event.amount, event.amount_due, event.participant_id) == (PaymentRejectionReason.AMOUNT_MISMATCH, amount, 81_800, PID)
    assert "81,800" in event.reason


def test_a_payment_to_another_reference_is_rejected_as_unknown() -> None:
    event = _payment_rejection(decide(a_payment(payment_reference="JMO-BPU-0000000000"), assessed(), kpj_number=KPJ))
    assert event.reason_code is PaymentRejectionReason.UNKNOWN_REFERENCE


def test_a_payment_before_the_assessment_is_rejected_as_not_assessed() -> None:
    assert _payment_rejection(decide(a_payment(), contact_confirmed(), kpj_number=KPJ)).reason_code is PaymentRejectionReason.NOT_ASSESSED


def test_a_payment_on_a_stream_without_registration_is_rejected_as_unknown() -> None:
    event = _payment_rejection(decide(a_payment(), registration.initial_state, kpj_number=KPJ))
    assert (event.reason_code, event.participant_id) == (PaymentRejectionReason.UNKNOWN_REFERENCE, None)


def test_a_second_payment_is_rejected_as_already_paid() -> None:
    event = _payment_rejection(decide(a_payment(provider_transaction_id="BNI-VA-2"), active(), kpj_number=KPJ))
    assert event.reason_code is PaymentRejectionReason.ALREADY_PAID


def test_a_redelivered_payment_transaction_changes_nothing() -> None:
    assert decide(a_payment(), active(), kpj_number=KPJ) == []


def test_a_redelivered_rejected_payment_transaction_changes_nothing() -> None:
    state = assessed()
    state = fold(state, decide(a_payment(amount=1_000), state))
    assert decide(a_payment(amount=1_000), state) == []


def test_after_a_rejected_payment_the_right_payment_still_activates() -> None:
    state = assessed()
    state = fold(state, decide(a_payment(amount=1_000), state))
    state = fold(state, decide(a_payment(provider_transaction_id="BNI-VA-2"), state, kpj_number=KPJ))
    assert state.status is Status.ACTIVE


@pytest.mark.parametrize("kpj", [None, "12345", "10000000000"], ids=["missing", "too short", "bad check digit"])
def test_a_payment_without_a_valid_reserved_kpj_number_is_refused_and_nothing_is_recorded(kpj: str | None) -> None:
    assert refusal(a_payment(), assessed(), kpj_number=kpj) == "KPJ_NUMBER_UNAVAILABLE"


# --- 6. Expiry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "stage"),
    [
        (registered, RegistrationStage.NIK_VERIFICATION),
        (nik_confirmed, RegistrationStage.OTP_VERIFICATION),
        (contact_confirmed, RegistrationStage.EMPLOYMENT_DETAILS),
        (pu_deferred, RegistrationStage.EMPLOYER_MEMBERSHIP),
        (assessed, RegistrationStage.PAYMENT),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_an_unfinished_registration_expires_after_the_timeout_naming_what_it_waited_for(state: Any, stage: RegistrationStage) -> None:
    [event] = decide(expiry(), state(), now=NOW + timedelta(hours=24))
    assert event == RegistrationExpired(participant_id=PID, stage=stage, timeout_seconds=86_400)


def test_an_unfinished_registration_is_not_expired_before_the_timeout() -> None:
    assert decide(expiry(), registered(), now=NOW + timedelta(hours=23, minutes=59)) == []


def test_the_timeout_comes_from_the_facts() -> None:
    [event] = decide(expiry(), registered(), now=NOW + timedelta(hours=2), registration_timeout=timedelta(hours=2))
    assert isinstance(event, RegistrationExpired) and event.timeout_seconds == 7_200
    assert decide(expiry(), registered(), now=NOW + timedelta(hours=2), registration_timeout=timedelta(days=7)) == []


@pytest.mark.parametrize("state", [lambda: registration.initial_state, active, rejected, expired], ids=["not started", "active", "rejected", "expired"])
def test_expiry_changes_nothing_when_the_registration_is_not_waiting(state: Any) -> None:
    assert decide(expiry(), state(), now=NOW + timedelta(days=30)) == []


def test_an_expired_registration_is_closed() -> None:
    assert expired().status is Status.EXPIRED


# --- closed registrations --------------------------------------------------------------------


@pytest.mark.parametrize("closed", [rejected, expired], ids=["rejected", "expired"])
@pytest.mark.parametrize("command", [a_command(), details()], ids=["register", "details"])
def test_a_closed_registration_refuses_every_command(closed: Any, command: Message) -> None:
    code = refusal(command, closed(), kpj_number=KPJ, employer_membership=MEMBERSHIP)
    assert code == ("REGISTRATION_ALREADY_STARTED" if isinstance(command, RegisterParticipant) else "REGISTRATION_CLOSED")


@pytest.mark.parametrize("closed", [rejected, expired], ids=["rejected", "expired"])
def test_a_payment_to_a_closed_registration_is_recorded_for_refund(closed: Any) -> None:
    event = _payment_rejection(decide(a_payment(), closed(), kpj_number=KPJ))
    assert event.reason_code is PaymentRejectionReason.REGISTRATION_CLOSED


@pytest.mark.parametrize("closed", [rejected, expired], ids=["rejected", "expired"])
@pytest.mark.parametrize("message", [nik_verified(), nik_rejected(), otp_verified(), RetryEmployerMembershipCheck(attempt=1), expiry()], ids=lambda m: m.TYPE)
def test_a_closed_registration_ignores_identity_events_and_schedulers(closed: Any, message: Message) -> None:
    assert decide(message, closed(), now=NOW + timedelta(days=30), employer_membership=MEMBERSHIP) == []


def test_an_unsupported_message_is_refused() -> None:
    assert refusal(ParticipantRegistered.model_validate(registered().participant.model_dump()), registered()) == "UNSUPPORTED_COMMAND"  # type: ignore[union-attr]


def test_a_payment_for_a_nik_another_registration_activated_first_is_refunded_and_ends_the_registration() -> None:
    refused, rejected = decide(a_payment(), assessed(), kpj_number=KPJ, nik_claimed_elsewhere=True)
    assert (refused.reason_code, rejected.reason_code) == (PaymentRejectionReason.ALREADY_REGISTERED, "ALREADY_REGISTERED")
    assert fold(assessed(), [refused, rejected]).status is Status.REJECTED


def test_a_pu_employee_whose_nik_another_registration_activated_first_is_not_activated_twice() -> None:
    recorded, found, rejected = decide(pu_details(), contact_confirmed("PU"), employer_membership=MEMBERSHIP, nik_claimed_elsewhere=True)
    assert (found.TYPE, rejected.TYPE, rejected.reason_code) == ("EmployerMembershipFound", "RegistrationRejected", "ALREADY_REGISTERED")


@pytest.mark.parametrize(
    ("message", "state"),
    [(a_command(), lambda: registration.initial_state), (details(), contact_confirmed), (a_payment(), assessed), (expiry(), registered)],
    ids=["register", "details", "payment", "expiry"],
)
def test_a_decision_given_no_facts_decides_nothing_rather_than_assuming_them(message: Message, state: Any) -> None:
    with pytest.raises(InvariantBroken, match="facts"):
        registration.decide(message, state(), Context(now=NOW + timedelta(days=2), stream_id=STREAM, message_id=SOURCE_ID))
