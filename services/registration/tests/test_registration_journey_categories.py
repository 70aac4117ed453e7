"""Whole registrations through the decider, one per category: every message is decided against the
state folded from the log so far, and the emitted events are appended to that log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from jmo_contracts import Event, Message
from jmo_contracts.identity import NikVerified, OtpVerified
from jmo_contracts.registration import (
    AccountActivated,
    ProvideEmploymentDetails,
    RecordContributionPayment,
    RegisterParticipant,
    RetryEmployerMembershipCheck,
)
from jmo_registration.domain.kpj import is_valid_kpj, kpj_candidates
from jmo_registration.domain.contributions import RateTables
from jmo_registration.domain.registration import UNAVAILABLE, Activation, Applicant, MembershipCheck, Rates, Registration, Status, registration
from jmo_runtime import Context

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


@dataclass
class Journey:
    """One registration stream: its log and a clock that moves a minute per message."""

    participant_id: str
    log: list[Event] = field(default_factory=list)
    now: datetime = START

    @property
    def stream_id(self) -> str:
        return "registration-" + self.participant_id

    @property
    def state(self) -> Registration:
        return registration.fold(self.log)

    def send(self, message: Message, facts: object = None) -> list[Event]:
        """Decide ``message`` with ``facts`` (None for identity's events, which need none)."""
        self.now += timedelta(minutes=1)
        context = Context(now=self.now, stream_id=self.stream_id, facts=facts, message_id="9" * 32)
        events = list(registration.decide(message, self.state, context))
        self.log.extend(events)
        return events

    def types(self) -> list[str]:
        return [e.TYPE for e in self.log]

    def register_and_verify(self, category: str, otp_channel: str = "email") -> None:
        self.send(
            RegisterParticipant.model_validate(
                {"category": category, "nik": "3201011208850002", "full_name": "Budi  santoso", "email": "budi@example.com", "phone": "+62 812-3456-7890", "otp_channel": otp_channel}
            ),
            Applicant(nik_has_active_account=False, too_many_attempts=False),
        )
        assert self.state.status is Status.NIK_VERIFICATION
        self.send(NikVerified(participant_id=self.participant_id, registration_stream_id=self.stream_id, attempts=2))
        assert self.state.status is Status.OTP_VERIFICATION
        destination = "budi@example.com" if otp_channel == "email" else "+6281234567890"
        self.send(OtpVerified.model_validate({"participant_id": self.participant_id, "otp_id": "1" * 32, "purpose": "REGISTRATION", "channel": otp_channel, "destination": destination, "attempts": 1}))
        assert self.state.status is Status.EMPLOYMENT_DETAILS


RATES = Rates(RateTables.packaged())


def paid(kpj: str) -> Activation:
    return Activation(kpj_number=kpj, nik_claimed_elsewhere=False)


def employer(membership: object) -> MembershipCheck:
    return MembershipCheck(membership, nik_claimed_elsewhere=False, retry_step=timedelta(minutes=1))


def activated(journey: Journey) -> AccountActivated:
    event = journey.log[-1]
    assert isinstance(event, AccountActivated)
    return event


def test_a_self_employed_worker_registers_pays_the_first_contribution_and_gets_a_new_kpj_number() -> None:
    journey = Journey("a1" * 16)
    journey.register_and_verify("BPU", otp_channel="sms")
    [_, assessed] = journey.send(ProvideEmploymentDetails(occupation="Ojek daring", work_location="Kota Bandung", monthly_income=3_200_000, join_jht=True), RATES)
    assert journey.state.status is Status.PAYMENT
    reference = assessed.payment_reference  # type: ignore[attr-defined]
    assert assessed.amount_due == 30_000 + 6_800 + 60_000  # type: ignore[attr-defined]  # bracket Rp 3,000,000

    kpj = next(kpj_candidates(journey.participant_id))
    journey.send(RecordContributionPayment(payment_reference=reference, amount=96_800, paid_at=journey.now, channel="E_WALLET", provider="OVO", provider_transaction_id="OVO-1"), paid(kpj))

    assert journey.types() == [
        "ParticipantRegistered",
        "RegistrationNikConfirmed",
        "RegistrationContactConfirmed",
        "EmploymentDetailsRecorded",
        "ContributionAssessed",
        "ContributionPaid",
        "AccountActivated",
    ]
    card = activated(journey)
    assert (card.category, card.kpj_number, card.programs, card.full_name, card.notification_channel) == ("BPU", kpj, ["JKK", "JKM", "JHT"], "BUDI SANTOSO", "sms")
    assert is_valid_kpj(card.kpj_number)
    assert journey.state.status is Status.ACTIVE


def test_a_self_employed_worker_who_underpays_is_activated_only_by_the_full_payment() -> None:
    journey = Journey("a2" * 16)
    journey.register_and_verify("BPU")
    [_, assessed] = journey.send(ProvideEmploymentDetails(occupation="Penjahit", monthly_income=1_000_000), RATES)
    reference = assessed.payment_reference  # type: ignore[attr-defined]
    kpj = next(kpj_candidates(journey.participant_id))

    journey.send(RecordContributionPayment(payment_reference=reference, amount=10_000, paid_at=journey.now, channel="QRIS", provider="BRI", provider_transaction_id="Q-1"), paid(kpj))
    assert journey.state.status is Status.PAYMENT
    journey.send(RecordContributionPayment(payment_reference=reference, amount=16_800, paid_at=journey.now, channel="QRIS", provider="BRI", provider_transaction_id="Q-2"), paid(kpj))

    assert journey.types()[-3:] == ["ContributionPaymentRejected", "ContributionPaid", "AccountActivated"]
    assert activated(journey).programs == ["JKK", "JKM"]


def test_a_migrant_worker_records_the_placement_pays_the_package_and_gets_a_new_kpj_number() -> None:
    journey = Journey("b1" * 16)
    journey.register_and_verify("PMI")
    placement = {"destination_country": "TW", "placement_start": "2027-02-01", "placement_end": "2030-01-31", "overseas_employer": "Example Co., Ltd."}
    [recorded, assessed] = journey.send(ProvideEmploymentDetails.model_validate({"occupation": "Operator pabrik", "monthly_income": 12_000_000, "join_jht": True, "jht_monthly_amount": 50_000, "placement": placement}), RATES)
    assert recorded.placement.placement_end == date(2030, 1, 31)  # type: ignore[attr-defined]
    assert assessed.amount_due == 370_000 + 50_000  # type: ignore[attr-defined]

    kpj = next(kpj_candidates(journey.participant_id))
    journey.send(
        RecordContributionPayment(payment_reference=assessed.payment_reference, amount=420_000, paid_at=journey.now, channel="VIRTUAL_ACCOUNT", provider="BNI", provider_transaction_id="VA-9"),  # type: ignore[attr-defined]
        paid(kpj),
    )

    card = activated(journey)
    assert (card.category, card.kpj_number, card.programs) == ("PMI", kpj, ["JKK", "JKM", "JHT"])
    assert journey.state.status is Status.ACTIVE


MEMBERSHIP = {"kpj_number": "19087654321", "employer_npp": "AB987654", "employer_name": "PT Maju Bersama", "member_since": date(2021, 6, 1), "programs": ["JKK", "JKM", "JHT", "JP"], "active": True}


def test_a_wage_earner_is_activated_with_the_kpj_number_the_employer_enrolled() -> None:
    journey = Journey("c1" * 16)
    journey.register_and_verify("PU")
    journey.send(ProvideEmploymentDetails(occupation="Staf administrasi", employer_name="PT Maju", monthly_income=6_000_000), employer(MEMBERSHIP))

    assert journey.types()[3:] == ["EmploymentDetailsRecorded", "EmployerMembershipFound", "AccountActivated"]
    card = activated(journey)
    assert (card.category, card.kpj_number, card.employer_name, card.programs) == ("PU", "19087654321", "PT Maju Bersama", ["JKK", "JKM", "JHT", "JP"])
    assert journey.state.status is Status.ACTIVE


def test_a_wage_earner_waits_while_the_employer_registry_is_down_and_is_activated_by_a_retry() -> None:
    journey = Journey("c2" * 16)
    journey.register_and_verify("PU")
    journey.send(ProvideEmploymentDetails(occupation="Teknisi", monthly_income=7_000_000), employer(UNAVAILABLE))
    journey.send(RetryEmployerMembershipCheck(attempt=1), employer(UNAVAILABLE))
    assert journey.state.status is Status.EMPLOYER_MEMBERSHIP
    journey.send(RetryEmployerMembershipCheck(attempt=2), employer(MEMBERSHIP))

    assert journey.types()[3:] == ["EmploymentDetailsRecorded", "EmployerMembershipCheckDeferred", "EmployerMembershipCheckDeferred", "EmployerMembershipFound", "AccountActivated"]
    assert journey.state.status is Status.ACTIVE


def test_a_wage_earner_the_employer_never_enrolled_is_rejected_and_told_to_ask_hrd() -> None:
    journey = Journey("c3" * 16)
    journey.register_and_verify("PU")
    journey.send(ProvideEmploymentDetails(occupation="Kasir", monthly_income=4_000_000), employer(None))

    assert journey.types()[3:] == ["EmploymentDetailsRecorded", "EmployerMembershipNotFound", "RegistrationRejected"]
    assert "HRD" in journey.log[-1].reason  # type: ignore[attr-defined]
    assert journey.state.status is Status.REJECTED
