"""Registration journeys of the three categories through the real stack (SPEC §3), from
RegisterParticipant to AccountActivated, and the refusals the rules name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from jmo_cli.gateway import Gateway, command_envelope
from jmo_contracts import Envelope
from jmo_registries import identities

from .test_identity_flow import delivered_code

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
ENDS = {"AccountActivated", "RegistrationRejected", "CommandRejected", "ContributionPaymentRejected", "ContributionAssessed", "EmployerMembershipCheckDeferred"}


def person(category: str, n: int, *, employer: bool | None = None) -> dict[str, Any]:
    pool = [p for p in identities(None, 400) if employer is None or p["employer_registered"] == employer]
    p = pool[n]
    tail = p["nik"][-4:]
    return {"category": category, "nik": p["nik"], "full_name": p["full_name"], "email": f"jmo{tail}@example.com", "phone": f"0813000{tail}", "otp_channel": "sms"}


@pytest.fixture
def stack(service_runner: Any) -> None:
    service_runner("registration")
    service_runner("identity")


async def contact_verified(gateway: Gateway, data: dict[str, Any], infra: Any, topic_prefix: str, keys: dict[str, str]) -> Envelope:
    """Register, then answer the OTP: the journey is then at the employment-details step."""
    journey = command_envelope("RegisterParticipant", data)
    await gateway.send(journey)
    issued = next(e for e in await gateway.until(journey.correlation_id, {"OtpIssued", "NikRejected", "CommandRejected"}, timeout=60) if e.type == "OtpIssued")
    code = await delivered_code(infra, topic_prefix, keys, journey.correlation_id, issued.payload["otp_id"])
    pid = journey.stream_id.removeprefix("registration-")
    await gateway.send(command_envelope("SubmitOtp", {"participant_id": pid, "purpose": "REGISTRATION", "code": code}, correlation_id=journey.correlation_id, stream=f"identity-{pid}"))
    await gateway.until(journey.correlation_id, {"RegistrationContactConfirmed"}, timeout=60)
    return journey


async def step(gateway: Gateway, journey: Envelope, command_type: str, data: dict[str, Any]) -> list[Envelope]:
    command = command_envelope(command_type, data, correlation_id=journey.correlation_id, stream=journey.stream_id)
    await gateway.send(command)
    return await gateway.until(journey.correlation_id, ENDS, timeout=60)


def payment(assessed: Envelope, amount: int, txn: str) -> dict[str, Any]:
    return {"payment_reference": assessed.payload["payment_reference"], "amount": amount, "paid_at": datetime.now(UTC).isoformat(), "channel": "VIRTUAL_ACCOUNT", "provider": "BNI", "provider_transaction_id": txn}


def only(events: list[Envelope], type_: str) -> Envelope:
    [found] = [e for e in events if e.type == type_]
    return found


@pytest.mark.usefixtures("stack")
async def test_a_self_employed_worker_pays_the_first_contribution_and_gets_a_new_kpj(infra: Any, topic_prefix: str, service_keys: dict[str, str]) -> None:
    data = person("BPU", 0)
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey = await contact_verified(gateway, data, infra, topic_prefix, service_keys)
        assessed = only(await step(gateway, journey, "ProvideEmploymentDetails", {"occupation": "Pedagang keliling", "work_location": "Kota Bogor", "monthly_income": 2_500_000, "join_jht": True}), "ContributionAssessed")
        due = assessed.payload["amount_due"]
        assert due == 25_000 + 6_800 + 50_000  # JKK 1 % and JHT 2 % of the Rp 2.5 M bracket, JKM flat
        refused = only(await step(gateway, journey, "RecordContributionPayment", payment(assessed, due - 1_000, "BNI-1")), "ContributionPaymentRejected")
        assert (refused.payload["reason_code"], refused.payload["amount_due"]) == ("AMOUNT_MISMATCH", due)
        activated = only(await step(gateway, journey, "RecordContributionPayment", payment(assessed, due, "BNI-2")), "AccountActivated")
        assert len(activated.payload["kpj_number"]) == 11 and set(activated.payload["programs"]) == {"JKK", "JKM", "JHT"}
        again = command_envelope("RegisterParticipant", data)
        await gateway.send(again)
        [refusal] = await gateway.until(again.correlation_id, {"CommandRejected", "ParticipantRegistered"}, timeout=60)
        assert (refusal.type, refusal.payload["reason_code"]) == ("CommandRejected", "ALREADY_REGISTERED")


@pytest.mark.usefixtures("stack")
async def test_an_employee_enrolled_by_the_employer_is_activated_with_the_employers_kpj(infra: Any, topic_prefix: str, service_keys: dict[str, str]) -> None:
    enrolled = identities("PU", 5)[1]
    data = person("PU", 0, employer=True) | {"nik": enrolled["nik"], "full_name": enrolled["full_name"]}
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey = await contact_verified(gateway, data, infra, topic_prefix, service_keys)
        events = await step(gateway, journey, "ProvideEmploymentDetails", {"occupation": "Operator produksi", "employer_name": "PT Contoh", "monthly_income": 5_000_000})
    assert only(events, "AccountActivated").payload["kpj_number"] == enrolled["kpj_number"]


@pytest.mark.usefixtures("stack")
async def test_an_employee_the_employer_registry_does_not_know_is_refused(infra: Any, topic_prefix: str, service_keys: dict[str, str]) -> None:
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey = await contact_verified(gateway, person("PU", 3, employer=False), infra, topic_prefix, service_keys)
        events = await step(gateway, journey, "ProvideEmploymentDetails", {"occupation": "Operator produksi", "employer_name": "PT Tidak Ada", "monthly_income": 5_000_000})
    assert only(events, "RegistrationRejected").payload["reason_code"] == "EMPLOYER_MEMBERSHIP_NOT_FOUND"


@pytest.mark.usefixtures("stack")
async def test_a_migrant_worker_pays_the_placement_package_and_is_activated(infra: Any, topic_prefix: str, service_keys: dict[str, str]) -> None:
    placement = {"destination_country": "MY", "placement_start": "2027-01-15", "placement_end": "2029-01-14"}
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey = await contact_verified(gateway, person("PMI", 5), infra, topic_prefix, service_keys)
        assessed = only(await step(gateway, journey, "ProvideEmploymentDetails", {"occupation": "Asisten rumah tangga", "monthly_income": 6_000_000, "placement": placement}), "ContributionAssessed")
        assert assessed.payload["amount_due"] == 370_000
        activated = only(await step(gateway, journey, "RecordContributionPayment", payment(assessed, 370_000, "BRI-7")), "AccountActivated")
    assert activated.payload["category"] == "PMI"


async def test_a_registration_left_unfinished_expires_and_refuses_to_go_on(infra: Any, topic_prefix: str, service_runner: Any) -> None:
    service_runner("registration", {"JMO_REGISTRATION_TIMEOUT_SECONDS": "2", "JMO_REGISTRATION_SWEEP_SECONDS": "0.5"})  # no identity: it never gets further
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey = command_envelope("RegisterParticipant", person("BPU", 13))
        await gateway.send(journey)
        events = await gateway.until(journey.correlation_id, {"RegistrationExpired"}, timeout=30)
        assert only(events, "RegistrationExpired").payload["stage"] == "NIK_VERIFICATION"
        late = await step(gateway, journey, "ProvideEmploymentDetails", {"occupation": "Petani", "monthly_income": 1_000_000})
    assert only(late, "CommandRejected").payload["reason_code"] == "REGISTRATION_CLOSED"
