"""Identity's use cases (``application.verification``) over fakes: a recording command handler, an
outbox over the in-memory store, a fake sleep and a fixed clock — what each one looks up, and what it leaves alone."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from jmo_contracts import Envelope, derived_id, new_id
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import NikDeferralReason, NikVerified, OtpPurpose, RequestOtp
from jmo_contracts.profile_update import ContactDataSubmitted
from jmo_contracts.registration import ParticipantRegistered
from jmo_identity.adapters.contact_changes import InMemoryContactChanges
from jmo_eventstore import InMemoryEventStore
from jmo_identity.adapters.outbox import StoreSealedCodes
from jmo_identity.application.otp_delivery import Drawn, OtpCodes
from jmo_identity.application.verification import ContactChangeSessions, NikChecks, OtpRequests
from jmo_identity.domain.identity import CodeRequest, NikUnanswered, identity
from jmo_identity.domain.otp import OtpPolicy
from jmo_registries import RegistryUnavailable
from jmo_registries.ports import CircuitOpen
from jmo_runtime.handler import Handled
from jmo_runtime.quota import InMemoryQuota

pytestmark = pytest.mark.unit

PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
SESSION = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
HMAC_KEY = secrets.token_bytes(32)
OTP_ID = "e" * 32


class Decisions:
    """Records what it was asked to decide, and decides nothing."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None, Any]] = []

    async def handle(self, command: Envelope, *, stream_id: str | None = None, facts: Any = None, new_stream: bool = False, beside: Any = None) -> Handled:  # noqa: ARG002
        self.asked.append((command.message_id, stream_id, facts))
        return Handled(stream_id or command.stream_id, (), duplicate=False)


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


class Unreachable:
    async def verify(self, nik: str, full_name: str, birth_date: date | None = None) -> Any:  # noqa: ARG002
        raise CircuitOpen("circuit open")


def codes(draws: list[str]) -> OtpCodes:
    """Codes whose every draw is noted in ``draws``."""

    async def publish(_: Envelope) -> None:
        raise AssertionError("nothing is delivered here")

    def ids() -> str:
        draws.append(OTP_ID)
        return OTP_ID

    return OtpCodes(
        code_length=6, hmac_key=HMAC_KEY, hmac_key_id="h1", delivery_key=secrets.token_bytes(32), delivery_key_id="d1",
        outbox=StoreSealedCodes(InMemoryEventStore()), publish=publish, clock=lambda: NOW, ids=ids,
    )


def submitted(phone: str = "+6281388800022") -> Envelope:
    event = ContactDataSubmitted(
        participant_id=PID, session_id=SESSION, phone=phone, email="siti@example.com", bank_name="BNI", bank_account_number="0123456789",
        npwp_missing_warning=True, verification_required=[OtpChannel.SMS],
    )
    return Envelope.wrap(event, stream_id=f"profile-update-{SESSION}", correlation_id=new_id())


def contact_change() -> RequestOtp:
    return RequestOtp.model_validate({"participant_id": PID, "channel": "sms", "purpose": "CONTACT_CHANGE", "new_contact": "0813-8880-0022", "profile_update_session_id": SESSION})


async def test_while_dukcapil_cannot_be_asked_the_wait_is_told_under_a_cause_of_its_own_and_the_message_comes_back_later() -> None:
    registered = ParticipantRegistered(
        participant_id=PID, category=Category.BPU, nik="3201014508900001", full_name="SITI AMINAH", email="siti@example.com",
        phone="+6281234567890", otp_channel=OtpChannel.EMAIL, birth_date=date(1990, 8, 5), gender="F",
    )
    envelope = Envelope.wrap(registered, stream_id=f"registration-{PID}", correlation_id=new_id())
    decisions, sleeps, draws = Decisions(), Sleeps(), []
    checks = NikChecks(decisions=decisions, registry=Unreachable(), codes=codes(draws), policy=OtpPolicy(), retry_in=timedelta(seconds=2), sleep=sleeps)

    with pytest.raises(RegistryUnavailable):
        await checks.check(envelope)

    assert decisions.asked == [(derived_id("nik-deferred", envelope.message_id), f"identity-{PID}", NikUnanswered(reason=NikDeferralReason.CIRCUIT_OPEN, retry_in=timedelta(seconds=2)))]
    assert sleeps.slept == [2.0]
    assert draws == []  # no code is drawn for a check that did not happen


async def test_a_contact_change_code_request_that_outruns_its_session_waits_for_the_session_and_is_allowed() -> None:
    sessions = ContactChangeSessions(changes=InMemoryContactChanges(), hmac_key=HMAC_KEY, wait_seconds=3.0)

    async def session_arrives(seconds: float) -> None:  # noqa: ARG001
        await sessions.follow(submitted())

    sessions.sleep = session_arrives
    assert await sessions.allow(PID, contact_change()) is True


async def test_a_contact_change_code_request_whose_session_never_comes_gives_up_after_the_configured_wait() -> None:
    sleeps = Sleeps()
    sessions = ContactChangeSessions(changes=InMemoryContactChanges(), hmac_key=HMAC_KEY, wait_seconds=1.0, sleep=sleeps)
    assert await sessions.allow(PID, contact_change()) is False
    assert sum(sleeps.slept) == pytest.approx(1.0)


async def test_a_contact_change_to_another_number_than_the_session_submitted_is_not_allowed() -> None:
    sessions = ContactChangeSessions(changes=InMemoryContactChanges(), hmac_key=HMAC_KEY, wait_seconds=0.0)
    await sessions.follow(submitted(phone="+6281399999999"))
    assert await sessions.allow(PID, contact_change()) is False


async def test_a_destination_whose_hourly_quota_is_spent_gets_no_code_drawn() -> None:
    sessions = ContactChangeSessions(changes=InMemoryContactChanges(), hmac_key=HMAC_KEY, wait_seconds=0.0)
    await sessions.follow(submitted())
    draws: list[str] = []
    requests = OtpRequests(
        decisions=Decisions(), codes=codes(draws), policy=OtpPolicy(), hmac_key=HMAC_KEY, per_destination=InMemoryQuota(1, timedelta(hours=1)),
        sessions=sessions, clock=lambda: NOW,
    )
    state = identity.fold([NikVerified(participant_id=PID, registration_stream_id=f"registration-{PID}", attempts=1)])

    first = await requests.facts(PID, state, contact_change(), drawn := Drawn())
    assert isinstance(first, CodeRequest) and (first.contact_change_allowed, first.destination_allowed) == (True, True)
    assert first.code is not None and first.code.otp_id == OTP_ID and draws == [OTP_ID] and set(drawn.codes) == {OTP_ID}

    second = await requests.facts(PID, state, contact_change(), Drawn())
    assert second == CodeRequest(policy=OtpPolicy(), contact_change_allowed=True, destination_allowed=False, code=None)
    assert draws == [OTP_ID]

