"""The claim-check bucket and the protected participant data on the real MongoDB-protocol server (FerretDB)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from pymongo import AsyncMongoClient

from jmo_contracts import new_id
from jmo_biometric.adapters.blobs import BlobTooLarge, GridFsSelfieBlobs
from jmo_biometric.adapters.protection import ParticipantSealer
from jmo_eventstore import FieldEncryptionCodec, MongoKeyRing, participant_subject
from jmo_eventstore.testing import CommandLog
from jmo_biometric.adapters.references import MongoParticipantFaces
from jmo_contracts import Envelope
from jmo_contracts.registration import ParticipantRegistered
from jmo_runtime.wire import WireSealed, seal_envelope

pytestmark = pytest.mark.integration
PHOTO = Path(__file__).parent / "data" / "faces" / "obama3.jpg"  # ~600 KB: several GridFS chunks


async def test_a_blob_comes_back_whole_and_is_gone_after_delete(mongo_client: AsyncMongoClient, database_prefix: str) -> None:
    db = mongo_client[f"{database_prefix}blobs_{new_id()[:8]}"]
    blobs = GridFsSelfieBlobs(db)
    data = PHOTO.read_bytes()
    blob_id = await blobs.put(data, content_type="image/jpeg")
    assert len(blob_id) == 24 and await db["selfies.files"].find_one({"_id": blob_id}) is not None
    back = await blobs.get(blob_id, max_bytes=len(data))
    assert back is not None and hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    with pytest.raises(BlobTooLarge):
        await blobs.get(blob_id, max_bytes=len(data) - 1)
    await blobs.delete(blob_id)
    await blobs.delete(blob_id)  # already gone: nothing happens
    assert await blobs.get(blob_id, max_bytes=len(data)) is None
    assert await db["selfies.chunks"].count_documents({}) == 0 and await db["selfies.files"].count_documents({}) == 0


async def test_uploads_older_than_the_cutoff_are_swept_and_newer_ones_stay(mongo_client: AsyncMongoClient, database_prefix: str) -> None:
    from datetime import UTC, datetime, timedelta

    db = mongo_client[f"{database_prefix}blobs_{new_id()[:8]}"]
    blobs = GridFsSelfieBlobs(db)
    old = await blobs.put(b"\xff\xd8\xff old", content_type="image/jpeg")
    assert await blobs.delete_uploaded_before(datetime.now(UTC) - timedelta(hours=1)) == 0
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    assert await blobs.delete_uploaded_before(cutoff) == 1
    assert await blobs.get(old, max_bytes=100) is None and await db["selfies.chunks"].count_documents({}) == 0


async def test_nik_and_reference_embedding_are_sealed_under_the_participants_key_and_erased_with_it(mongo_client: AsyncMongoClient, database_prefix: str) -> None:
    db = mongo_client[f"{database_prefix}faces_{new_id()[:8]}"]
    master = os.urandom(32)
    keyring = MongoKeyRing(db["data_keys"], master)
    faces = MongoParticipantFaces(db, ParticipantSealer(keyring))
    pid, other = new_id(), new_id()
    embedding = tuple(i / 1000 for i in range(128))
    await faces.remember_nik(pid, "3201014508900001")
    await faces.remember_nik(other, "3201014508900002")
    await faces.keep_reference(pid, "model-v1", embedding)
    assert await faces.nik(pid) == "3201014508900001" and await faces.nik(new_id()) is None
    assert await faces.reference(pid, "model-v1") == embedding
    assert await faces.reference(pid, "model-v2") is None  # another model: recomputed, never compared across models
    stored = await db["participants"].find_one({"_id": pid})
    assert b"3201014508900001" not in stored["nik"]
    await db["participants"].replace_one({"_id": other}, {"_id": other, "nik": stored["nik"]})  # a sealed value copied elsewhere does not open
    with pytest.raises(InvalidTag):
        await faces.nik(other)
    with pytest.raises(InvalidTag):  # nor under another master key
        await MongoParticipantFaces(db, ParticipantSealer(MongoKeyRing(db["data_keys"], os.urandom(32)))).nik(pid)
    await keyring.erase(participant_subject(pid))  # erasing the participant (one key, every service) erases what biometric kept
    assert await faces.nik(pid) is None and await faces.reference(pid, "model-v1") is None
    await faces.remember_nik(pid, "3201014508900001")  # a late ParticipantRegistered keeps nothing about them
    assert await faces.nik(pid) is None


async def test_a_nik_sealed_on_the_wire_is_kept_as_it_came_in_one_insert_without_a_key_and_opened_at_the_first_selfie(infra: object, database_prefix: str) -> None:
    from datetime import date

    commands = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[commands])  # type: ignore[attr-defined]
    try:
        db = client[f"{database_prefix}faces_{new_id()[:8]}"]
        master = os.urandom(32)
        keyring = MongoKeyRing(db["data_keys"], master)
        pid, other = new_id(), new_id()
        event = ParticipantRegistered(participant_id=pid, category="BPU", nik="3201014508900007", full_name="SITI UJI", email="s@example.com", phone="+6281234567890", otp_channel="email", birth_date=date(1990, 8, 5), gender="F")
        on_wire = await seal_envelope(FieldEncryptionCodec(MongoKeyRing(db["data_keys"], master)), Envelope.wrap(event, stream_id=f"registration-{pid}", correlation_id=new_id()))  # the gateway's key
        kept = WireSealed.of(on_wire, "nik")
        assert kept is not None
        faces = MongoParticipantFaces(db, ParticipantSealer(keyring))  # a service that has never seen this participant's key
        commands.clear()
        await faces.remember_nik(pid, kept)
        assert commands.names == ["insert"] and commands.of("insert", "participants")  # no key look-up, no re-encryption
        assert b"3201014508900007" not in str(await db["participants"].find_one({"_id": pid})).encode()

        await faces.remember_nik(pid, WireSealed(pid, kept.stream_id, kept.type, kept.field, {"_enc": "AAAA"}))  # a redelivery (or a forgery) keeps the first copy
        assert await faces.nik(pid) == "3201014508900007"
        assert commands.of("find", "data_keys")  # the key is looked up when the NIK is needed

        await faces.remember_nik(other, WireSealed(pid, kept.stream_id, kept.type, kept.field, kept.sealed))  # someone else's NIK under another id
        assert await faces.nik(other) is None

        await keyring.erase(participant_subject(pid))
        assert await faces.nik(pid) is None  # erased with the participant's key
    finally:
        await client.close()


async def test_nik_copies_arriving_at_once_share_an_insert_and_a_redelivery_still_keeps_the_first(infra: object, database_prefix: str) -> None:
    commands = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[commands])  # type: ignore[attr-defined]
    try:
        db = client[f"{database_prefix}faces_{new_id()[:8]}"]
        faces = MongoParticipantFaces(db, ParticipantSealer(MongoKeyRing(db["data_keys"], os.urandom(32))))
        pids = [new_id() for _ in range(4)]

        def copy(pid: str, sealed: str) -> WireSealed:
            return WireSealed(pid, f"registration-{pid}", "ParticipantRegistered", "nik", {"_enc": sealed})

        await faces.remember_nik(pids[0], copy(pids[0], "first"))
        commands.clear()
        await asyncio.gather(faces.remember_nik(pids[1], copy(pids[1], "b")), faces.remember_nik(pids[0], copy(pids[0], "again")), *(faces.remember_nik(p, copy(p, p)) for p in pids[2:]))
        assert [[d["_id"] for d in c["documents"]] for c in commands.of("insert", "participants")] == [[pids[1]], [pids[0], *pids[2:]], pids[2:]]
        kept = {d["_id"]: d["nik_as_sent"]["sealed"]["_enc"] for d in await db["participants"].find({}).to_list()}
        assert kept == {pids[0]: "first", pids[1]: "b", pids[2]: pids[2], pids[3]: pids[3]}
    finally:
        await client.close()
