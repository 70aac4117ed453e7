"""The biometric service on the real stack: claim check in GridFS, SubmitSelfie → SelfieMatched /
SelfieRejected, the blob gone afterwards, redelivery harmless, and nothing personal in the log."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_cli.gateway import Gateway, command_envelope, upload_selfie
from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.biometric import BLOB_DATABASE, SELFIE_BUCKET
from jmo_contracts.registration import ParticipantRegistered
from jmo_registries import identities

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
FACES = Path(__file__).parents[2] / "services" / "biometric" / "tests" / "data" / "faces"
OUTCOMES = {"SelfieMatched", "SelfieRejected", "CommandRejected"}


def citizen_with_photo(photo: str) -> dict[str, Any]:
    return next(p for p in identities(None, 50) if p["photo"] and Path(p["photo"]).name == photo)


async def registered(gateway: Gateway, infra: Any, database_prefix: str, person: dict[str, Any]) -> str:
    """What registration publishes (synthetic here): biometric keeps the NIK, sealed, under the participant id."""
    pid = new_id()
    event = ParticipantRegistered(
        participant_id=pid, category="BPU", nik=person["nik"], full_name=person["full_name"], email="peserta@example.com",
        phone="+6281200000001", otp_channel="email", birth_date=date.fromisoformat(person["birth_date"]), gender="M",
    )
    await gateway.send(Envelope.wrap(event, stream_id=f"registration-{pid}", correlation_id=new_id()), topic=topics.events("registration"))
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        participants = client[f"{database_prefix}jmo_biometric"]["participants"]
        for _ in range(120):
            if (doc := await participants.find_one({"_id": pid})) is not None:
                assert person["nik"] not in str(doc)  # kept sealed (as it came on Kafka)
                return pid
            await asyncio.sleep(0.25)
    finally:
        await client.close()
    raise AssertionError("the biometric service did not take ParticipantRegistered")


async def blob_exists(infra: Any, database_prefix: str, blob_id: str) -> bool:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        db = client[f"{database_prefix}{BLOB_DATABASE}"]
        return await db[f"{SELFIE_BUCKET}.files"].find_one({"_id": blob_id}) is not None
    finally:
        await client.close()


async def submit(gateway: Gateway, infra: Any, database_prefix: str, pid: str, session: str, image: str, **tamper: Any) -> tuple[Envelope, Envelope]:
    claim = await upload_selfie(infra.mongodb_uri, f"{database_prefix}{BLOB_DATABASE}", (FACES / image).read_bytes()) | tamper
    assert await blob_exists(infra, database_prefix, claim["blob_id"])
    command = command_envelope("SubmitSelfie", {"participant_id": pid, "session_id": session, **claim}, stream=f"biometric-{session}")
    await gateway.send(command)
    [*_, outcome] = await gateway.until(command.correlation_id, OUTCOMES, timeout=90)
    assert outcome.type in OUTCOMES, outcome
    assert not await blob_exists(infra, database_prefix, claim["blob_id"])  # deleted after deciding, whatever the outcome
    return command, outcome


async def test_a_selfie_is_matched_or_refused_with_a_reason_and_its_blob_is_gone(infra: Any, database_prefix: str, topic_prefix: str, service_runner: Any) -> None:
    biometric = service_runner("biometric", {"JMO_BIOMETRIC_WORKERS": "1"}, timeout=120)
    person = citizen_with_photo("obama.jpg")
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        pid = await registered(gateway, infra, database_prefix, person)
        session = new_id()
        _, refused = await submit(gateway, infra, database_prefix, pid, session, "two_people.jpg")
        assert (refused.type, refused.payload["reason_code"], refused.payload["attempts_left"]) == ("SelfieRejected", "MULTIPLE_FACES", 2)
        _, damaged = await submit(gateway, infra, database_prefix, pid, session, "obama2.jpg", sha256="0" * 64)
        assert (damaged.payload["reason_code"], damaged.payload["attempts_left"]) == ("CHECKSUM_MISMATCH", 2)  # not the participant's doing
        command, matched = await submit(gateway, infra, database_prefix, pid, session, "obama2.jpg")
        assert matched.type == "SelfieMatched", matched.payload
        assert matched.payload["distance"] <= matched.payload["threshold"] and matched.payload["attempt"] == 2
        assert matched.payload["model_version"].startswith("dlib_face_recognition_resnet_model_v1")

        await gateway.send(command)  # redelivered: its blob is gone, the answer is in the log, nothing new
        assert [e async for e in gateway.events(command.correlation_id, wait=5)] == []
    log = biometric.read_log()
    assert person["nik"] not in log and person["full_name"] not in log
    assert "duplicate command ignored" in log
