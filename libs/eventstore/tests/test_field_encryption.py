"""Personal data in stored payloads: encrypted at rest, readable through the codec, erasable."""

from __future__ import annotations

import asyncio

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, new_id, stream_id
from jmo_contracts.registration import ParticipantRegistered
from jmo_eventstore import ERASED, FieldEncryptionCodec, InMemoryEventStore, InMemoryKeyRing, MongoEventStore, MongoKeyRing, PlainCodec, participant_subject, subject_of

PERSONAL = ("3201014508900001", "SITI AMINAH", "siti@example.com", "+6281234567890")


def registered(stream: str) -> Envelope:
    body = ParticipantRegistered(participant_id="ab" * 16, category="BPU", nik=PERSONAL[0], full_name=PERSONAL[1], email=PERSONAL[2], phone=PERSONAL[3], otp_channel="email", birth_date="1990-08-05", gender="F")
    return Envelope.wrap(body, stream_id=stream, correlation_id=new_id())


@pytest.mark.unit
async def test_personal_fields_are_stored_encrypted_and_read_back_in_clear() -> None:
    store = InMemoryEventStore(codec=FieldEncryptionCodec(InMemoryKeyRing()))
    s = stream_id("registration")
    sent = registered(s)
    await store.append(s, 0, [sent], cause_id=new_id())
    stored = json.dumps(store.snapshot())
    assert not any(value in stored for value in PERSONAL)
    assert "BPU" in stored  # what is not personal stays readable
    [got] = await store.read_stream(s)
    assert got.envelope == sent


@pytest.mark.unit
async def test_forgetting_the_key_erases_the_personal_data_and_the_log_still_verifies() -> None:
    keys = InMemoryKeyRing()
    store = InMemoryEventStore(codec=FieldEncryptionCodec(keys))
    s = stream_id("registration")
    sent = registered(s)
    await store.append(s, 0, [sent], cause_id=new_id())
    keys.forget(subject_of(s, sent.payload))
    [got] = await store.read_stream(s)
    assert {got.envelope.payload[f] for f in ("nik", "full_name", "email", "phone")} == {"[erased]"}
    assert got.envelope.payload["category"] == "BPU"
    assert await store.verify() == []


@pytest.fixture
async def mongo_db(infra: Any, database_prefix: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, socketTimeoutMS=20_000)
    yield client[f"{database_prefix}crypto"]
    await client.close()


@pytest.mark.integration
async def test_the_real_store_never_holds_personal_data_in_clear(mongo_db: Any) -> None:
    store = MongoEventStore(mongo_db, name=f"c{new_id()[:8]}", codec=FieldEncryptionCodec(InMemoryKeyRing()))
    await store.ensure_indexes()
    s = stream_id("registration")
    sent = registered(s)
    await store.append(s, 0, [sent], cause_id=new_id())
    raw = json.dumps([d async for d in store.commits.find({})], default=str)
    assert not any(value in raw for value in PERSONAL)
    assert [e.envelope for e in await store.read_stream(s)] == [sent]
    assert await store.verify() == []


@pytest.mark.integration
async def test_keys_kept_in_the_store_are_wrapped_shared_by_instances_and_erasable_per_participant(mongo_db: Any) -> None:
    name = f"k{new_id()[:8]}"
    master = bytes(range(32))
    writer = MongoEventStore(mongo_db, name=name, codec=FieldEncryptionCodec(MongoKeyRing(mongo_db[f"{name}_keys"], master)))
    await writer.ensure_indexes()
    registration, identity = stream_id("registration"), "identity-" + "ab" * 16
    await writer.append(registration, 0, [registered(registration)], cause_id=new_id())
    await writer.append(identity, 0, [registered(identity)], cause_id=new_id())  # same participant, another stream
    [key_doc] = [d async for d in mongo_db[f"{name}_keys"].find({})]  # one key per participant
    assert key_doc["_id"] == "participant-" + "ab" * 16

    # another instance (a restarted service, the audit CLI) with the master key reads everything
    reader_ring = MongoKeyRing(mongo_db[f"{name}_keys"], master)
    reader = MongoEventStore(mongo_db, name=name, codec=FieldEncryptionCodec(reader_ring))
    assert (await reader.read_stream(identity))[0].envelope.payload["nik"] == PERSONAL[0]
    # without the master key the wrapped data key is useless
    with pytest.raises(InvalidTag):
        await MongoEventStore(mongo_db, name=name, codec=FieldEncryptionCodec(MongoKeyRing(mongo_db[f"{name}_keys"], bytes(32)))).read_stream(identity)

    cached = MongoKeyRing(mongo_db[f"{name}_keys"], master, cache_seconds=0.2)  # a running service with the key in memory
    assert (await MongoEventStore(mongo_db, name=name, codec=FieldEncryptionCodec(cached)).read_stream(identity))[0].envelope.payload["nik"] == PERSONAL[0]
    await reader_ring.erase("participant-" + "ab" * 16)
    fresh = MongoEventStore(mongo_db, name=name, codec=FieldEncryptionCodec(MongoKeyRing(mongo_db[f"{name}_keys"], master)))
    for stream in (registration, identity):
        [got] = await fresh.read_stream(stream)
        assert got.envelope.payload["nik"] == "[erased]" and got.envelope.payload["category"] == "BPU"
    assert await fresh.verify() == []
    # a late event about the erased participant keeps nothing personal, and no key is made anew
    await fresh.append(identity, 1, [registered(identity)], cause_id=new_id())
    [tombstone] = [d async for d in mongo_db[f"{name}_keys"].find({})]
    assert "wrapped" not in tombstone and "erased_at" in tombstone
    raw = [d async for d in mongo_db[name].find({})]
    assert PERSONAL[0] not in json.dumps(raw, default=str)
    assert [e.envelope.payload["nik"] for e in await fresh.read_stream(identity)] == ["[erased]", "[erased]"]
    await asyncio.sleep(0.3)  # the other process sees the erasure once its cached key expires
    assert (await MongoEventStore(mongo_db, name=name, codec=FieldEncryptionCodec(cached)).read_stream(identity))[0].envelope.payload["nik"] == "[erased]"


@pytest.mark.unit
async def test_a_value_kept_beside_the_log_is_sealed_under_the_participants_key_and_erased_with_it() -> None:
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    subject, other = participant_subject("ab" * 16), participant_subject("cd" * 16)
    value = {"nik": PERSONAL[0], "full_name": PERSONAL[1], "address": {"street": "Jl. Melati No. 7"}}
    assert await codec.seal(subject, value, context="profile", create=False) is None  # no key yet, none made
    sealed = await codec.seal(subject, value, context="profile", create=True)
    assert not any(v in json.dumps(sealed) for v in (*PERSONAL, "Melati"))
    assert await codec.unseal(subject, sealed, context="profile") == value
    assert await codec.unseal(subject, {"kept": "as it is"}, context="profile") == {"kept": "as it is"}  # never sealed
    await codec.seal(other, value, context="profile", create=True)
    # bound to its participant and purpose: copied elsewhere it does not open
    assert await codec.unseal(other, sealed, context="profile") == ERASED
    assert await codec.unseal(subject, sealed, context="another purpose") == ERASED
    keys.forget(subject)
    assert await codec.unseal(subject, sealed, context="profile") == ERASED
    keys.key_for(subject, create=True)  # a key made anew does not open what the erased one sealed
    assert await codec.unseal(subject, sealed, context="profile") == ERASED
    await keys.erase(subject)  # erased for good: no key is made any more
    assert await codec.seal(subject, value, context="profile", create=True) is None


@pytest.mark.unit
async def test_the_plain_codec_keeps_values_as_they_are() -> None:
    assert await PlainCodec().seal("participant-x", {"nik": PERSONAL[0]}, context="profile", create=False) == {"nik": PERSONAL[0]}
    assert await PlainCodec().unseal("participant-x", {"nik": PERSONAL[0]}, context="profile") == {"nik": PERSONAL[0]}
