"""The NIK claim taken at the activating step, through the service's own wiring (in memory):
the first registration of a NIK to pay is activated, a second one side by side is not, and a
payment reaching a registration that already ended claims nothing."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from jmo_contracts import Envelope, Message, new_id, stream_id, topics
from jmo_contracts.identity import NikVerified, OtpPurpose, OtpVerified
from jmo_contracts.registration import ProvideEmploymentDetails, RecordContributionPayment, RegisterParticipant
from jmo_eventstore import InMemoryEventStore
from jmo_registration.adapters.accounts import InMemoryNikIndex
from jmo_registration.entrypoint.app import build
from jmo_registration.settings import RegistrationSettings
from jmo_runtime.relay import InMemoryCheckpoints
from jmo_runtime.testing import running_in_memory

pytestmark = pytest.mark.component

NIK = "3201014508900001"


class Journey:
    def __init__(self, service: Any, events: list[Envelope]) -> None:
        self.service, self.events, self.stream = service, events, stream_id("registration")
        self.pid = self.stream.removeprefix("registration-")

    async def publish(self, topic: str, message: Message, stream: str | None = None) -> list[Envelope]:
        before = len(self.events)
        await self.service.broker.publish(Envelope.wrap(message, stream_id=stream or self.stream, correlation_id=new_id()).to_json(), topic=topic)
        while await self.service.relay_once():
            pass
        return [e for e in self.events[before:] if e.stream_id == self.stream]

    async def until_payment(self) -> Envelope:
        await self.publish(topics.commands("registration"), RegisterParticipant(category="BPU", nik=NIK, full_name="Siti Aminah", email="siti@example.com", phone="081234567890", otp_channel="email"))
        await self.publish(topics.events("identity"), NikVerified(participant_id=self.pid, registration_stream_id=self.stream, attempts=1), f"identity-{self.pid}")
        await self.publish(topics.events("identity"), OtpVerified(participant_id=self.pid, otp_id=new_id(), purpose=OtpPurpose.REGISTRATION, channel="email", destination="siti@example.com", attempts=1), f"identity-{self.pid}")
        [*_, assessed] = await self.publish(topics.commands("registration"), ProvideEmploymentDetails(occupation="Penjahit", monthly_income=2_000_000, join_jht=False))
        assert assessed.type == "ContributionAssessed"
        return assessed

    async def pay(self, assessed: Envelope) -> list[str]:
        p = assessed.payload
        payment = RecordContributionPayment(payment_reference=p["payment_reference"], amount=p["amount_due"], paid_at=datetime.now(UTC), channel="VIRTUAL_ACCOUNT", provider="BNI", provider_transaction_id=new_id())
        return [e.type for e in await self.publish(topics.PAYMENTS, payment)]


@pytest.fixture
async def wired(request: pytest.FixtureRequest, clock: Any) -> AsyncIterator[tuple[Any, list[Envelope], InMemoryNikIndex, Any]]:
    timeout = getattr(request, "param", 86_400)
    settings = RegistrationSettings(topic_prefix="", database_prefix="", nik_index_key=base64.b64encode(bytes(32)).decode(), registration_timeout_seconds=timeout)
    nik_index = InMemoryNikIndex()
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints(), nik_index=nik_index, clock=clock)
    async with running_in_memory(service, topics.events("registration")) as events:
        yield service, events, nik_index, clock


async def test_of_two_registrations_of_one_nik_paying_side_by_side_only_the_first_is_activated(wired: Any) -> None:
    service, events, nik_index, _ = wired
    first, second = Journey(service, events), Journey(service, events)
    first_bill, second_bill = await first.until_payment(), await second.until_payment()
    assert await first.pay(first_bill) == ["ContributionPaid", "AccountActivated"]
    assert await second.pay(second_bill) == ["ContributionPaymentRejected", "RegistrationRejected"]
    assert nik_index.active == {NIK: first.stream}


@pytest.mark.parametrize("wired", [1], indirect=True)
async def test_a_payment_reaching_an_expired_registration_claims_nothing(wired: Any) -> None:
    service, events, nik_index, clock = wired
    late = Journey(service, events)
    bill = await late.until_payment()
    clock.advance(1)  # the registration timeout (1 s) passes; expiry is the scheduler's, never a message
    [expire] = [job for name, _, job in service._periodic if name == "expiry"]
    await expire()
    while await service.relay_once():
        pass
    assert [e.type for e in events if e.stream_id == late.stream][-1] == "RegistrationExpired"
    assert await late.pay(bill) == ["ContributionPaymentRejected"]
    assert nik_index.active == {}


class CrashOnFirstRelease(InMemoryNikIndex):
    """A NIK index whose first release dies, as the process would in a crash right there."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False

    async def release(self, nik: str, stream_id: str) -> None:
        if not self.crashed:
            self.crashed = True
            raise ConnectionResetError("the process died here")
        await super().release(nik, stream_id)


async def test_a_crash_while_an_expiry_releases_the_nik_claim_is_finished_by_the_next_sweep(clock: Any) -> None:
    settings = RegistrationSettings(topic_prefix="", database_prefix="", nik_index_key=base64.b64encode(bytes(32)).decode(), registration_timeout_seconds=1)
    nik_index = CrashOnFirstRelease()
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints(), nik_index=nik_index, clock=clock)
    async with running_in_memory(service, topics.events("registration")) as events:
        journey = Journey(service, events)
        bill = await journey.until_payment()
        p = bill.payload
        short = RecordContributionPayment(payment_reference=p["payment_reference"], amount=p["amount_due"] - 1, paid_at=datetime.now(UTC), channel="QRIS", provider="BRI", provider_transaction_id=new_id())
        assert [e.type for e in await journey.publish(topics.PAYMENTS, short)] == ["ContributionPaymentRejected"]
        assert nik_index.active == {NIK: journey.stream}  # claimed at the activating step
        clock.advance(1)  # the registration timeout (1 s) passes
        [expire] = [job for name, _, job in service._periodic if name == "expiry"]
        with pytest.raises(ConnectionResetError):
            await expire()  # decided and logged, then the crash: the claim is still held
        assert nik_index.active == {NIK: journey.stream}
        await expire()  # the next sweep finds it still watched, decides nothing new, and gives the claim up
        while await service.relay_once():
            pass
        assert nik_index.active == {}
        assert [e.type for e in events if e.stream_id == journey.stream].count("RegistrationExpired") == 1


async def test_registering_one_nik_more_often_than_allowed_is_refused_through_the_wiring() -> None:
    settings = RegistrationSettings(topic_prefix="", database_prefix="", nik_index_key=base64.b64encode(bytes(32)).decode(), registrations_per_nik_per_hour=2)
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints())
    async with running_in_memory(service, topics.events("registration")) as events:
        answers = []
        for n in range(3):  # each a new registration (a new participant id), another email each time
            journey = Journey(service, events)
            register = RegisterParticipant(category="BPU", nik=NIK, full_name="Siti Aminah", email=f"siti{n}@example.com", phone="081234567890", otp_channel="email")
            [answer] = await journey.publish(topics.commands("registration"), register)
            answers.append(answer.payload.get("reason_code", answer.type))
    assert answers == ["ParticipantRegistered", "ParticipantRegistered", "TOO_MANY_ATTEMPTS"]
