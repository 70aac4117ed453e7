"""Pengkinian data on the real stack (SPEC §5): a participant registered and activated through
registration and identity updates the profile through every step — the selfie matched by the
biometric service against the KTP photo, a changed phone verified by OTP; the read model is rebuilt
from the logs and compared field by field (both opened with the service's keys: at rest the personal
fields are sealed); refusals, redelivery and a restart of the service in the middle of a session."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_cli.gateway import Gateway, command_envelope, upload_selfie
from jmo_contracts import Envelope, Message, new_id, topics
from jmo_contracts.biometric import BLOB_DATABASE, SelfieRejected, SelfieRejectionReason
from jmo_devstack.services import mentions
from jmo_eventstore import FieldEncryptionCodec, MongoKeyRing
from jmo_profile_update.adapters.profiles import MongoProfileStore
from jmo_runtime.messaging import publish as publish_envelope

from .test_biometric_flow import FACES, citizen_with_photo
from .test_identity_flow import delivered_code
from .test_registration_journey import contact_verified, only, payment, person, step

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
STEP_OUTCOMES = {
    "CommandRejected", "ProfileUpdateStarted", "ParticipationDataConfirmed", "SelfieVerificationRecorded", "ContactDataSubmitted", "ContactChangeVerified",
    "PopulationDataSubmitted", "AdditionalDataSubmitted", "ProfileUpdated", "ProfileUpdateCancelled", "ProfileUpdateExpired", "OtpIssued", "OtpRejected",
}
ADDRESS = {"street": "Jl. Melati No. 7", "rt": "002", "rw": "004", "village": "Tegal Gundil", "district": "Bogor Utara", "city": "Kota Bogor", "province": "Jawa Barat", "postal_code": "16152"}
POPULATION = {"mother_maiden_name": "Sri Wahyuni", "address": ADDRESS, "marital_status": "KAWIN"}
ADDITIONAL = {"last_education": "S1", "blood_type": "B", "religion": "ISLAM", "emergency_contact_name": "Dewi Lestari", "emergency_contact_phone": "081377700011", "emergency_contact_relationship": "Istri"}


@pytest.fixture
def stack(service_runner: Any, sinks: Any) -> dict[str, Any]:
    started = {name: service_runner(name) for name in ("registration", "identity", "biometric", "profile-update")}
    return started | {"notification": service_runner("notification", sinks.env)}


def with_ktp_photo(photo: str, n: int) -> dict[str, Any]:
    """Registration data of the synthetic citizen whose KTP photo (at Dukcapil) is ``photo``."""
    citizen = citizen_with_photo(photo)
    return person("BPU", n) | {"nik": citizen["nik"], "full_name": citizen["full_name"]}


async def activated_participant(
    gateway: Gateway, n: int, infra: Any, topic_prefix: str, database_prefix: str, keys: dict[str, str], *, data: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """A BPU participant registered, verified, paid and activated through the real services."""
    data = data or person("BPU", n)
    journey = await contact_verified(gateway, data, infra, topic_prefix, keys)
    assessed = only(await step(gateway, journey, "ProvideEmploymentDetails", {"occupation": "Penjahit", "monthly_income": 2_000_000, "join_jht": False}), "ContributionAssessed")
    only(await step(gateway, journey, "RecordContributionPayment", payment(assessed, assessed.payload["amount_due"], f"BNI-{n}")), "AccountActivated")
    pid = journey.stream_id.removeprefix("registration-")
    await profile_active(infra, database_prefix, pid)
    return pid, data


async def profile_active(infra: Any, database_prefix: str, pid: str) -> None:
    """Wait until profile-update's read model has folded the activation (it follows registration's
    events topic asynchronously, as a real app's session would start some time after activation)."""
    for _ in range(120):
        try:
            if (await stored_profile(infra, database_prefix, "participant_profiles", pid)).get("status") == "ACTIVE":  # status is kept in clear
                return
        except AssertionError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError("the activation never reached the profile read model")


async def session_started(gateway: Gateway, n: int, photo: str, infra: Any, topic_prefix: str, database_prefix: str, keys: dict[str, str]) -> tuple[str, dict[str, Any], Session]:
    """A participant whose KTP photo is ``photo``, activated, with a profile session started."""
    pid, data = await activated_participant(gateway, n, infra, topic_prefix, database_prefix, keys, data=with_ktp_photo(photo, n))
    s = Session(gateway, pid)
    started = await s.send("StartProfileUpdate")
    assert started.type == "ProfileUpdateStarted", started.payload
    return pid, data, s


class Session:
    """One pengkinian-data session as the gateway drives it; each step waits up to ``wait`` seconds
    for its outcome (longer where an instance may be killed under it)."""

    def __init__(self, gateway: Gateway, pid: str, *, wait: float = 60) -> None:
        self.gateway, self.pid, self.sid, self.correlation_id = gateway, pid, new_id(), new_id()
        self.wait = wait
        self.sent: list[Envelope] = []
        #: Events of the session read while waiting for another: the follower reads several topics,
        #: and nothing orders them against each other (profile-update's SelfieVerificationRecorded
        #: may be read before the SelfieMatched that caused it); :func:`until_type` looks here first.
        self.passed_over: list[Envelope] = []

    def envelope(self, command_type: str, **data: Any) -> Envelope:
        return command_envelope(command_type, {"participant_id": self.pid, "session_id": self.sid, **data}, correlation_id=self.correlation_id)

    async def send(self, command_type: str, **data: Any) -> Envelope:
        """Send (remembering it for the redelivery check); return the outcome this command caused."""
        command = self.envelope(command_type, **data)
        self.sent.append(command)
        return await self.deliver(command)

    async def deliver(self, command: Envelope) -> Envelope:
        """Send ``command``; its outcome (an earlier step's outcome published again, as Kafka may
        deliver it at least once, is passed over)."""
        await self.gateway.send(command)
        seen: list[str] = []
        async for e in self.gateway.events(self.correlation_id, wait=self.wait):
            if e.causation_id == command.message_id and e.type in STEP_OUTCOMES:
                return e
            seen.append(e.type)
            self.passed_over.append(e)
        raise AssertionError(f"no outcome of {command.type}: {seen}")

    async def verify_new_phone(self, infra: Any, topic_prefix: str, keys: dict[str, str], phone: str) -> None:
        """Request a contact-change code for ``phone``, read it as the notification service would, answer it."""
        otp = command_envelope("RequestOtp", {"participant_id": self.pid, "channel": "sms", "purpose": "CONTACT_CHANGE", "new_contact": phone, "profile_update_session_id": self.sid}, correlation_id=self.correlation_id)
        issued = await self.deliver(otp)
        assert issued.type == "OtpIssued", issued.payload
        code = await delivered_code(infra, topic_prefix, keys, self.correlation_id, issued.payload["otp_id"])
        await self.gateway.send(command_envelope("SubmitOtp", {"participant_id": self.pid, "purpose": "CONTACT_CHANGE", "code": code}, correlation_id=self.correlation_id))
        await until_type(self.gateway, self, "ContactChangeVerified")

    async def selfie(self, infra: Any, database_prefix: str, image: str) -> Envelope:
        """Upload the selfie as the gateway does (claim check) and send SubmitSelfie; the biometric outcome."""
        claim = await upload_selfie(infra.mongodb_uri, f"{database_prefix}{BLOB_DATABASE}", (FACES / image).read_bytes())
        command = command_envelope("SubmitSelfie", {"participant_id": self.pid, "session_id": self.sid, **claim}, correlation_id=self.correlation_id)
        await self.gateway.send(command)
        events = await self.gateway.until(self.correlation_id, {"SelfieMatched", "SelfieRejected", "CommandRejected"}, timeout=self.wait + 30)
        assert events and events[-1].causation_id == command.message_id, [e.type for e in events]
        self.passed_over.extend(events[:-1])
        return events[-1]

    async def as_biometric(self, infra: Any, topic_prefix: str, event: Message) -> Envelope:
        """Publish an outcome as the biometric service would (for the case of a session's last attempt)."""
        from faststream.kafka import KafkaBroker

        from jmo_runtime.kafka_security import faststream_security

        envelope = Envelope.wrap(event, stream_id=f"biometric-{self.sid}", correlation_id=self.correlation_id)
        broker = KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.kafka_options("biometric")))
        await broker.start()
        try:
            await publish_envelope(broker, topic_prefix + topics.events("biometric"), envelope)
        finally:
            await broker.stop()
        return envelope


async def until_type(gateway: Gateway, session: Session, wanted: str) -> Envelope:
    """The session's first ``wanted`` event: one already read while waiting for another, or the next."""
    if read := next((e for e in session.passed_over if e.type == wanted), None):
        session.passed_over.remove(read)
        return read
    events = await gateway.until(session.correlation_id, {wanted}, timeout=session.wait)
    assert events and events[-1].type == wanted, [e.type for e in events]
    return events[-1]


def jmo(*args: str, infra: Any, topic_prefix: str, database_prefix: str, keys: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = os.environ | keys | {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "MONGODB_URI": infra.mongodb_uri, "JMO_TOPIC_PREFIX": topic_prefix, "JMO_DATABASE_PREFIX": database_prefix} | infra.kafka_tool_env()
    return subprocess.run([str(Path(sys.executable).with_name("jmo")), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.usefixtures("stack")
async def test_an_active_participant_updates_the_profile_with_a_verified_new_phone(
    infra: Any, topic_prefix: str, database_prefix: str, service_keys: dict[str, str], stack: dict[str, Any], sinks: Any
) -> None:
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        pid, data, s = await session_started(gateway, 21, "kit_harington1.jpeg", infra, topic_prefix, database_prefix, service_keys)
        # someone else's session, and a step skipped, are refused
        intruder = command_envelope("ConfirmParticipationData", {"participant_id": new_id(), "session_id": s.sid, "confirmed": True}, correlation_id=s.correlation_id)
        assert (await s.deliver(intruder)).payload["reason_code"] == "NOT_YOUR_SESSION"
        assert (await s.send("SubmitPopulationData", gender="M", **POPULATION)).payload["reason_code"] == "STEP_OUT_OF_ORDER"
        assert (await s.send("ConfirmParticipationData", confirmed=True)).type == "ParticipationDataConfirmed"
        early = await s.send("SubmitContactData", phone="081388800022", email=data["email"], bank_name="BNI", bank_account_number="0123456789")
        assert early.payload["reason_code"] == "SELFIE_NOT_VERIFIED"

        selfie = await s.selfie(infra, database_prefix, "kit_harington2.jpeg")  # the real biometric service, against the KTP photo
        assert selfie.type == "SelfieMatched", selfie.payload
        await until_type(gateway, s, "SelfieVerificationRecorded")

        bad_npwp = await s.send("SubmitContactData", phone="081388800022", email=data["email"], npwp="12.345.678.9-01", bank_name="BNI", bank_account_number="0123456789")
        assert bad_npwp.payload["reason_code"] == "INVALID_NPWP"
        contact = await s.send("SubmitContactData", phone="0813-8880-0022", email=data["email"], npwp="09.254.294.3-407.000", bank_name="bank negara indonesia", bank_account_number="0123456789")
        assert (contact.type, contact.payload["verification_required"], contact.payload["bank_name"]) == ("ContactDataSubmitted", ["sms"], "BNI")

        # the service restarts in the middle of the session and carries on where it was
        stack["profile-update"].restart()

        await s.verify_new_phone(infra, topic_prefix, service_keys, "081388800022")

        assert (await s.send("SubmitPopulationData", gender=_gender(data["nik"]), **POPULATION)).type == "PopulationDataSubmitted"
        assert (await s.send("SubmitAdditionalData", **ADDITIONAL)).type == "AdditionalDataSubmitted"
        assert (await s.send("ConfirmProfileUpdate", terms_accepted=False)).payload["reason_code"] == "TERMS_NOT_ACCEPTED"
        updated = await s.send("ConfirmProfileUpdate", terms_accepted=True)
        assert updated.type == "ProfileUpdated"
        assert {"phone", "npwp", "bank_name", "address", "blood_type"} <= set(updated.payload["changed_fields"]) and "email" not in updated.payload["changed_fields"]

        # every command redelivered (same message id): the same outcome, nothing new in the log
        length = await stream_length(infra, database_prefix, f"profile-update-{s.sid}")
        for command in s.sent:
            await gateway.send(command)
        await asyncio.sleep(3)
        assert await stream_length(infra, database_prefix, f"profile-update-{s.sid}") == length

    # "Pengkinian data berhasil" reaches the participant, on the channel chosen at registration (sms), at the new number
    for _ in range(120):
        if notices := [m for m in sinks.messages(to="+6281388800022") if "Pengkinian data berhasil" in f"{m.get('subject') or ''} {m['body']}"]:
            break
        await asyncio.sleep(0.25)
    assert len(notices) == 1, sinks.messages()

    # at rest, the logs hold personal data only encrypted (per-participant keys wrapped by JMO_DATA_KEY)
    personal = (data["nik"], data["full_name"], data["email"], data["phone"], "+6281388800022", "092542943407000", "0123456789", ADDRESS["street"], "SRI WAHYUNI", "+6281377700011")
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        for service in ("registration", "identity", "profile_update"):
            raw = json.dumps([d async for d in client[f"{database_prefix}jmo_{service}"]["events_commits"].find({})], default=str)
            assert data["nik"] not in raw and "+6281388800022" not in raw and data["email"] not in raw, service
    finally:
        await client.close()

    # ... and so does the profile read model: one value sealed under the participant's key, the rest is bookkeeping
    stored = await stored_profile(infra, database_prefix, "participant_profiles", pid)
    assert not [v for v in personal if mentions(v, json.dumps(stored, default=str))], stored
    assert (stored["status"], stored["profile_version"]) == ("ACTIVE", 1) and "phone" in stored["last_changed_fields"]
    live = await opened_profile(infra, database_prefix, "participant_profiles", pid, service_keys)
    assert (live["phone"], live["npwp"], live["bank_name"], live["blood_type"], live["profile_version"]) == ("+6281388800022", "092542943407000", "BNI", "B", 1)
    assert live["address"]["village"] == "Tegal Gundil" and live["status"] == "ACTIVE" and live["nik"] == data["nik"]

    # an auditor rebuilds the read model from the logs: the same profile, field by field, sealed the same way
    rebuilt = jmo("audit", "rebuild", "participant-profiles", "--into", "profiles_rebuilt", infra=infra, topic_prefix=topic_prefix, database_prefix=database_prefix, keys=service_keys)
    assert rebuilt.returncode == 0, rebuilt.stderr
    rebuilt_stored = await stored_profile(infra, database_prefix, "profiles_rebuilt", pid)
    assert not [v for v in personal if mentions(v, json.dumps(rebuilt_stored, default=str))], rebuilt_stored
    assert await opened_profile(infra, database_prefix, "profiles_rebuilt", pid, service_keys) == live
    assert {k: v for k, v in rebuilt_stored.items() if k != "personal"} == {k: v for k, v in stored.items() if k != "personal"}
    # ... and the whole journey is in the participant's history, in order
    history = jmo("audit", "history", pid, infra=infra, topic_prefix=topic_prefix, database_prefix=database_prefix, keys=service_keys)
    events = [json.loads(line) for line in history.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert next(e for e in events if e["type"] == "ParticipantRegistered")["payload"]["nik"] == data["nik"]  # the auditor, with the key, reads it
    assert types.index("AccountActivated") < types.index("ProfileUpdateStarted") < types.index("SelfieVerificationRecorded") < types.index("ProfileUpdated")
    # ... an auditor asks what the profile showed before the change and after it; every read is on record
    at = {e["type"]: e["occurred_at"] for e in events}
    before, after = (jmo("audit", "state", pid, "--at", at[t], infra=infra, topic_prefix=topic_prefix, database_prefix=database_prefix, keys=service_keys) for t in ("ProfileUpdateStarted", "ProfileUpdated"))
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    registered_phone = next(e for e in events if e["type"] == "ParticipantRegistered")["payload"]["phone"]
    assert json.loads(before.stdout)["profile"]["phone"] == registered_phone != "+6281388800022"
    assert json.loads(after.stdout)["profile"]["phone"] == "+6281388800022" and json.loads(after.stdout)["sessions"][0]["state"]["step"] == "UPDATED"
    access = jmo("audit", "access", pid, infra=infra, topic_prefix=topic_prefix, database_prefix=database_prefix, keys=service_keys)
    assert [json.loads(line)["payload"]["command"] for line in access.stdout.splitlines()] == ["history", "state", "state"]


@pytest.mark.usefixtures("topics")
async def test_sessions_refuse_inactive_accounts_end_after_the_last_failed_selfie_and_expire(
    infra: Any, topic_prefix: str, database_prefix: str, service_keys: dict[str, str], service_runner: Any
) -> None:
    for name in ("registration", "identity", "biometric"):
        service_runner(name)
    service_runner("profile-update", {"JMO_PROFILE_SESSION_TIMEOUT_SECONDS": "8", "JMO_PROFILE_SWEEP_SECONDS": "0.5"})
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        stranger = Session(gateway, new_id())
        assert (await stranger.send("StartProfileUpdate")).payload["reason_code"] == "UNKNOWN_PARTICIPANT"

        pid, _ = await activated_participant(gateway, 22, infra, topic_prefix, database_prefix, service_keys, data=with_ktp_photo("biden.jpg", 22))
        failed = Session(gateway, pid)
        await failed.send("StartProfileUpdate")
        await failed.send("ConfirmParticipationData", confirmed=True)
        stranger_face = await failed.selfie(infra, database_prefix, "obama2.jpg")  # someone else's face: refused, an attempt used
        assert (stranger_face.type, stranger_face.payload["reason_code"]) == ("SelfieRejected", "NOT_MATCHING")
        not_yet = await failed.send("SubmitContactData", phone="081388800044", email="y@example.com", bank_name="BNI", bank_account_number="0123456789")
        assert not_yet.payload["reason_code"] == "SELFIE_NOT_VERIFIED"
        last = SelfieRejected(participant_id=pid, session_id=failed.sid, attempt=3, reason_code=SelfieRejectionReason.NOT_MATCHING, reason="Wajah tidak cocok", attempts_left=0, distance=0.71, threshold=0.5)
        await failed.as_biometric(infra, topic_prefix, last)
        cancelled = await until_type(gateway, failed, "ProfileUpdateCancelled")
        assert cancelled.payload["reason_code"] == "SELFIE_ATTEMPTS_EXHAUSTED"
        assert (await failed.send("SubmitContactData", phone="081388800033", email="x@example.com", bank_name="BNI", bank_account_number="0123456789")).payload["reason_code"] == "SESSION_CLOSED"

        idle = Session(gateway, pid)
        await idle.send("StartProfileUpdate")
        expired = await until_type(gateway, idle, "ProfileUpdateExpired")
        assert expired.payload["last_step"] == "STARTED"
        assert (await idle.send("ConfirmParticipationData", confirmed=True)).payload["reason_code"] == "SESSION_EXPIRED"


def _gender(nik: str) -> str:
    return "F" if int(nik[6:8]) > 40 else "M"


async def stream_length(infra: Any, database_prefix: str, stream_id: str) -> int:
    from jmo_eventstore import MongoEventStore

    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        return len(await MongoEventStore(client[f"{database_prefix}jmo_profile_update"], name="events").read_stream(stream_id))
    finally:
        await client.close()


async def stored_profile(infra: Any, database_prefix: str, collection: str, pid: str) -> dict[str, Any]:
    """A profile document as it is at rest."""
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        doc = await client[f"{database_prefix}jmo_profile_update"][collection].find_one({"_id": pid})
        assert doc is not None, f"no profile {pid} in {collection}"
        return doc
    finally:
        await client.close()


async def opened_profile(infra: Any, database_prefix: str, collection: str, pid: str, keys: dict[str, str]) -> dict[str, Any]:
    """A profile as the service reads it: opened with the services' shared key ring (JMO_DATA_KEY)."""
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        db = client[f"{database_prefix}jmo_profile_update"]
        ring = MongoKeyRing(client[f"{database_prefix}jmo_keys"]["data_keys"], base64.b64decode(keys["JMO_DATA_KEY"]))
        profile = await MongoProfileStore(db[collection], FieldEncryptionCodec(ring)).get(pid)
        assert profile is not None, f"no readable profile {pid} in {collection}"
        return profile
    finally:
        await client.close()
