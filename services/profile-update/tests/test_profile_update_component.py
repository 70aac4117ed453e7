"""The profile-update service wired in memory (TestKafkaBroker, in-memory store): the read model fed by
registration's events, a whole session, redelivery, erasure, and the expiry sweep. The log and the read
model share one codec (per-participant keys), as the service wires them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jmo_contracts import Envelope, Message, new_id, topics
from jmo_contracts.biometric import SelfieMatched
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import OtpPurpose, OtpVerified
from jmo_contracts.profile_update import (
    ConfirmParticipationData,
    ConfirmProfileUpdate,
    StartProfileUpdate,
    SubmitAdditionalData,
    SubmitContactData,
    SubmitPopulationData,
)
from jmo_contracts.registration import AccountActivated, ParticipantRegistered, Program
from jmo_eventstore import FieldEncryptionCodec, InMemoryEventStore, InMemoryKeyRing, participant_subject
from jmo_profile_update.adapters.profiles import InMemoryProfileStore
from jmo_profile_update.domain import profile as profiles
from jmo_profile_update.entrypoint.app import build
from jmo_profile_update.settings import ProfileUpdateSettings
from jmo_runtime import Service
from jmo_runtime.relay import InMemoryCheckpoints
from jmo_runtime.testing import FakeClock, running_in_memory
from jmo_runtime.schedule import InMemorySchedule

from .test_session_decider import ADDITIONAL, CONTACT, POPULATION

pytestmark = pytest.mark.component

PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"


@dataclass
class Wired:
    service: Service
    store: InMemoryEventStore
    profiles: InMemoryProfileStore
    deadlines: InMemorySchedule
    events: list[Envelope]
    correlation_id: str
    keys: InMemoryKeyRing
    clock: FakeClock

    async def publish(self, topic: str, message: Message, stream: str) -> Envelope:
        envelope = Envelope.wrap(message, stream_id=stream, correlation_id=self.correlation_id)
        await self.resend(topic, envelope)
        return envelope

    async def resend(self, topic: str, envelope: Envelope) -> None:
        await self.service.broker.publish(envelope.to_json(), topic=topic)
        while await self.service.relay_once():
            pass

    async def command(self, message: Any) -> Envelope:
        return await self.publish(topics.commands("profile-update"), message, f"profile-update-{message.session_id}")

    def types(self) -> list[str]:
        return [e.type for e in self.events]


@pytest.fixture
async def wired(request: pytest.FixtureRequest) -> AsyncIterator[Wired]:
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    store, read_model, deadlines = InMemoryEventStore(codec=codec), InMemoryProfileStore(codec), InMemorySchedule()
    timeout = getattr(request, "param", 1800)
    settings = ProfileUpdateSettings(topic_prefix="", database_prefix="", profile_sweep_seconds=3600, profile_session_timeout_seconds=timeout)
    clock = FakeClock()
    service = build(settings, store=store, checkpoints=InMemoryCheckpoints(), profiles=read_model, deadlines=deadlines, clock=clock)
    async with running_in_memory(service, topics.events("profile-update")) as events:
        yield Wired(service, store, read_model, deadlines, events, new_id(), keys, clock)


async def registered_and_active(w: Wired) -> None:
    stream = f"registration-{PID}"
    registered = ParticipantRegistered(
        participant_id=PID, category=Category.BPU, nik="3201014508900001", full_name="SITI AMINAH", email="siti@example.com",
        phone="+6281234567890", otp_channel=OtpChannel.EMAIL, birth_date="1990-08-05", gender="F",
    )
    activated = AccountActivated(
        participant_id=PID, category=Category.BPU, kpj_number="26112100042", digital_card_id="1" * 32, programs=[Program.JKK, Program.JKM],
        full_name="SITI AMINAH", email="siti@example.com", phone="+6281234567890", notification_channel=OtpChannel.EMAIL,
    )
    await w.publish(topics.events("registration"), registered, stream)
    await w.publish(topics.events("registration"), activated, stream)


def ids(session_id: str, **extra: Any) -> dict[str, Any]:
    return {"participant_id": PID, "session_id": session_id, **extra}


async def selfie_matched(w: Wired, sid: str) -> None:
    """A session started, its participation data confirmed and its selfie matched by biometric."""
    await w.command(StartProfileUpdate(**ids(sid)))
    await w.command(ConfirmParticipationData(**ids(sid, confirmed=True)))
    matched = SelfieMatched(participant_id=PID, session_id=sid, attempt=1, distance=0.4, threshold=0.6, engine="face_recognition", model_version="v1", reference_source="DUKCAPIL")
    await w.publish(topics.events("biometric"), matched, f"biometric-{sid}")


async def test_a_whole_session_updates_the_read_model(wired: Wired) -> None:
    await registered_and_active(wired)
    assert (await wired.profiles.get(PID))["status"] == "ACTIVE"
    sid = new_id()
    await selfie_matched(wired, sid)
    await wired.command(SubmitContactData(**ids(sid, **CONTACT)))
    await wired.command(SubmitPopulationData(**ids(sid, **POPULATION)))
    await wired.command(SubmitAdditionalData(**ids(sid, **ADDITIONAL)))
    assert f"profile-update-{sid}" in wired.deadlines.planned
    confirm = await wired.command(ConfirmProfileUpdate(**ids(sid, terms_accepted=True)))
    assert wired.types()[-1] == "ProfileUpdated", wired.types()
    assert f"profile-update-{sid}" not in wired.deadlines.planned
    profile = await wired.profiles.get(PID)
    assert (profile["bank_name"], profile["blood_type"], profile["profile_version"], profile["last_session_id"]) == ("BNI", "O", 1, sid)
    assert profile["address"]["village"] == "Sukamaju" and profile["kpj_number"] == "26112100042"

    # redelivering the confirmation changes neither the log nor the read model
    before = (len(await wired.store.read_stream(f"profile-update-{sid}")), await wired.profiles.get(PID))
    await wired.resend(topics.commands("profile-update"), confirm)
    assert (len(await wired.store.read_stream(f"profile-update-{sid}")), await wired.profiles.get(PID)) == before

    # the live read model equals a fold of the logs from scratch
    rebuilt: dict[str, Any] | None = None
    while await wired.store.sequence():  # the global order is a batch tool's (services no longer sequence)
        pass
    for e in [*(await wired.store.read_all(0, limit=1000))]:
        rebuilt = profiles.apply(rebuilt, e.envelope) if profiles.participant_of(e.envelope) else rebuilt
    assert rebuilt is not None and all(rebuilt.get(k) == profile.get(k) for k in ("bank_name", "blood_type", "address", "npwp", "profile_version"))


async def test_the_read_model_is_sealed_and_an_erased_participant_cannot_start_a_session(wired: Wired) -> None:
    await registered_and_active(wired)
    stored = json.dumps(wired.profiles.docs[PID])
    assert not any(v in stored for v in ("3201014508900001", "SITI AMINAH", "siti@example.com", "+6281234567890", "26112100042"))
    assert (await wired.profiles.get(PID) or {}).get("nik") == "3201014508900001"
    wired.keys.forget(participant_subject(PID))  # the participant's key erased: their log and profile with it
    await wired.command(StartProfileUpdate(**ids(new_id())))
    assert wired.types() == ["CommandRejected"] and wired.events[0].payload["reason_code"] == "UNKNOWN_PARTICIPANT"


async def test_a_session_cannot_start_before_the_account_is_active(wired: Wired) -> None:
    sid = new_id()
    await wired.command(StartProfileUpdate(**ids(sid)))
    assert wired.types() == ["CommandRejected"]
    assert wired.events[0].payload["reason_code"] == "UNKNOWN_PARTICIPANT"


async def sweep(w: Wired) -> None:
    [job] = [job for name, _, job in w.service._periodic if name == "expiry"]
    await job()
    while await w.service.relay_once():
        pass


@pytest.mark.parametrize("wired", [1], indirect=True)
async def test_the_sweep_expires_an_inactive_session_once(wired: Wired) -> None:
    await registered_and_active(wired)
    sid = new_id()
    await wired.command(StartProfileUpdate(**ids(sid)))
    await sweep(wired)
    assert "ProfileUpdateExpired" not in wired.types()  # not due yet
    wired.clock.advance(1.1)  # past the one-second inactivity timeout
    await sweep(wired)
    await sweep(wired)
    assert wired.types() == ["ProfileUpdateStarted", "ProfileUpdateExpired"]
    assert wired.events[-1].payload["last_step"] == "STARTED" and not wired.deadlines.planned
    await wired.command(ConfirmParticipationData(**ids(sid, confirmed=True)))
    assert wired.events[-1].payload["reason_code"] == "SESSION_EXPIRED"


async def test_a_selfie_verdict_forged_on_the_commands_topic_is_refused_and_moves_nothing(wired: Wired) -> None:
    await registered_and_active(wired)
    sid = new_id()
    await wired.command(StartProfileUpdate(**ids(sid)))
    await wired.command(ConfirmParticipationData(**ids(sid, confirmed=True)))
    matched = SelfieMatched(participant_id=PID, session_id=sid, attempt=1, distance=0.1, threshold=0.6, engine="face_recognition", model_version="v1", reference_source="DUKCAPIL")
    forged = await wired.publish(topics.commands("profile-update"), matched, f"profile-update-{sid}")  # only biometric's events topic carries verdicts
    refused = wired.events[-1]
    assert (refused.type, refused.payload["reason_code"], refused.payload["command_id"]) == ("CommandRejected", "TYPE_NOT_ACCEPTED_ON_TOPIC", forged.message_id)
    assert refused.correlation_id == forged.correlation_id and refused.stream_id.startswith("refusal-")  # the gateway finds it; no session stream touched
    await wired.command(SubmitContactData(**ids(sid, **CONTACT)))
    assert wired.events[-1].payload["reason_code"] != "TYPE_NOT_ACCEPTED_ON_TOPIC" and wired.events[-1].type == "CommandRejected"  # still waiting for a real selfie
    assert [e.type for e in wired.events if e.stream_id == f"profile-update-{sid}"] == ["ProfileUpdateStarted", "ParticipationDataConfirmed", "CommandRejected"]


async def test_a_command_for_another_service_s_stream_is_refused(wired: Wired) -> None:
    await registered_and_active(wired)
    sid = new_id()
    start = await wired.publish(topics.commands("profile-update"), StartProfileUpdate(**ids(sid)), f"biometric-{sid}")
    assert [(e.type, e.payload["reason_code"], e.payload["command_id"]) for e in wired.events] == [("CommandRejected", "STREAM_NOT_OF_THIS_SERVICE", start.message_id)]


async def test_a_changed_email_blocks_the_confirmation_until_identity_s_otp_verified_for_the_session_arrives(wired: Wired) -> None:
    await registered_and_active(wired)
    sid = new_id()
    await selfie_matched(wired, sid)
    await wired.command(SubmitContactData(**ids(sid, **(CONTACT | {"email": "siti.baru@example.com"}))))
    await wired.command(SubmitPopulationData(**ids(sid, **POPULATION)))
    await wired.command(SubmitAdditionalData(**ids(sid, **ADDITIONAL)))
    await wired.command(ConfirmProfileUpdate(**ids(sid, terms_accepted=True)))
    assert wired.events[-1].payload["reason_code"] == "CONTACT_NOT_VERIFIED"
    verified = OtpVerified(
        participant_id=PID, otp_id=new_id(), purpose=OtpPurpose.CONTACT_CHANGE, channel=OtpChannel.EMAIL, destination="siti.baru@example.com",
        profile_update_session_id=sid, attempts=1,
    )
    await wired.publish(topics.events("identity"), verified, f"identity-{PID}")
    assert wired.types()[-1] == "ContactChangeVerified"
    await wired.command(ConfirmProfileUpdate(**ids(sid, terms_accepted=True)))
    assert wired.types()[-1] == "ProfileUpdated"
    assert (await wired.profiles.get(PID) or {})["email"] == "siti.baru@example.com"
