"""Registration's periodic use cases through the service's own wiring (in memory), with a fake
employer registry and a fake clock: what is due is decided when the clock says so, never by waiting."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from jmo_contracts import Envelope, Message, new_id, stream_id, topics
from jmo_contracts.identity import NikVerified, OtpPurpose, OtpVerified
from jmo_contracts.registration import ProvideEmploymentDetails, RegisterParticipant
from jmo_eventstore import InMemoryEventStore
from jmo_registration.entrypoint.app import build
from jmo_registration.settings import RegistrationSettings
from jmo_registries import Membership, RegistryUnavailable
from jmo_runtime import Service
from jmo_runtime.relay import InMemoryCheckpoints
from jmo_runtime.testing import running_in_memory

pytestmark = pytest.mark.component

STEP_SECONDS = 60
TIMEOUT_SECONDS = 3_600
MEMBERSHIP = Membership(kpj_number="19087654321", employer_npp="AB987654", employer_name="PT Maju Bersama", member_since=date(2021, 6, 1), programs=("JKK", "JKM", "JHT", "JP"), active=True)


class EmployerRegistry:
    """Down until told otherwise; counts the questions it was asked."""

    def __init__(self) -> None:
        self.up, self.asked = False, 0

    async def membership(self, nik: str) -> Membership | None:  # noqa: ARG002
        self.asked += 1
        if not self.up:
            raise RegistryUnavailable("connection refused")
        return MEMBERSHIP


@dataclass
class Wired:
    service: Service
    events: list[Envelope]
    clock: Any
    registry: EmployerRegistry
    stream: str

    async def send(self, topic: str, message: Message, stream: str | None = None) -> list[str]:
        before = len(self.events)
        await self.service.broker.publish(Envelope.wrap(message, stream_id=stream or self.stream, correlation_id=new_id()).to_json(), topic=topic)
        return await self.flushed(before)

    async def run(self, job_name: str) -> list[str]:
        """Run the periodic job ``job_name`` once, as its timer would."""
        before = len(self.events)
        [job] = [job for name, _, job in self.service._periodic if name == job_name]  # noqa: SLF001
        await job()
        return await self.flushed(before)

    async def flushed(self, before: int) -> list[str]:
        while await self.service.relay_once():
            pass
        return [e.type for e in self.events[before:] if e.stream_id == self.stream]

    async def until_employment_details(self, category: str) -> None:
        pid = self.stream.removeprefix("registration-")
        await self.send(topics.commands("registration"), RegisterParticipant(category=category, nik="3201014508900001", full_name="Siti Aminah", email="siti@example.com", phone="081234567890", otp_channel="email"))
        await self.send(topics.events("identity"), NikVerified(participant_id=pid, registration_stream_id=self.stream, attempts=1), f"identity-{pid}")
        await self.send(topics.events("identity"), OtpVerified(participant_id=pid, otp_id=new_id(), purpose=OtpPurpose.REGISTRATION, channel="email", destination="siti@example.com", attempts=1), f"identity-{pid}")


@pytest.fixture
async def wired(clock: Any) -> AsyncIterator[Wired]:
    settings = RegistrationSettings(
        topic_prefix="", database_prefix="", nik_index_key=base64.b64encode(bytes(32)).decode(),
        registration_timeout_seconds=TIMEOUT_SECONDS, employer_retry_step_seconds=STEP_SECONDS,
    )
    registry = EmployerRegistry()
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints(), employers=registry, clock=clock)
    async with running_in_memory(service, topics.events("registration")) as events:
        yield Wired(service, events, clock, registry, stream_id("registration"))


async def test_a_deferred_employer_check_is_asked_again_only_once_the_clock_reaches_its_retry_time(wired: Wired) -> None:
    await wired.until_employment_details("PU")
    details = ProvideEmploymentDetails(occupation="Teknisi", monthly_income=7_000_000)
    assert await wired.send(topics.commands("registration"), details) == ["EmploymentDetailsRecorded", "EmployerMembershipCheckDeferred"]
    wired.registry.up = True

    wired.clock.advance(STEP_SECONDS - 1)
    assert await wired.run("employer-retry") == []
    assert wired.registry.asked == 1

    wired.clock.advance(1)
    assert await wired.run("employer-retry") == ["EmployerMembershipFound", "AccountActivated"]
    assert wired.registry.asked == 2
    assert await wired.run("employer-retry") == []  # nothing left to plan
    assert wired.registry.asked == 2


async def test_an_unfinished_registration_is_expired_once_the_clock_passes_its_timeout_and_only_once(wired: Wired) -> None:
    await wired.until_employment_details("BPU")
    wired.clock.advance(TIMEOUT_SECONDS - 1)
    assert await wired.run("expiry") == []

    wired.clock.advance(1)
    assert await wired.run("expiry") == ["RegistrationExpired"]
    assert await wired.run("expiry") == []


async def test_what_is_decided_is_dated_by_the_injected_clock(wired: Wired) -> None:
    await wired.until_employment_details("BPU")
    assert {e.occurred_at for e in wired.events if e.stream_id == wired.stream} == {wired.clock.now}
