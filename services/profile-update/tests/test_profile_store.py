"""The participant-profile read model at rest: personal fields sealed under the participant's key
(the event log's codec), readable in clear through the store, and gone once the key is erased."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, new_id
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.profile_update import Address, ProfileUpdated, ProfileValues
from jmo_contracts.registration import AccountActivated, ParticipantRegistered, Program
from jmo_eventstore import ERASED, FieldEncryptionCodec, InMemoryKeyRing, MongoKeyRing, participant_subject
from jmo_eventstore.testing import CommandLog
from jmo_profile_update.adapters.profiles import AS_SENT, PERSONAL, InMemoryProfileStore, MongoProfileStore, blank_personal, stored_form
from jmo_runtime import Unprocessable
from jmo_runtime.wire import seal_envelope
from jmo_profile_update.domain import profile as profiles

PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
NIK, NAME, EMAIL, PHONE, KPJ = "3201014508900001", "SITI AMINAH", "siti@example.com", "+6281234567890", "26112100042"
NEW = {"phone": "+6281388800022", "npwp": "092542943407000", "bank_account_number": "0123456789", "mother_maiden_name": "SRI WAHYUNI", "emergency_contact_name": "DEWI LESTARI"}
#: Every personal value the events below give the profile: none may be stored in clear.
PERSONAL_VALUES = (NIK, NAME, EMAIL, PHONE, KPJ, "1990-08-05", "Jl. Melati No. 7", "Tegal Gundil", *NEW.values())


def registered(pid: str = PID, **change: Any) -> Envelope:
    body = ParticipantRegistered(
        participant_id=pid, category=Category.BPU, nik=NIK, full_name=NAME, email=EMAIL, phone=PHONE, otp_channel=OtpChannel.SMS, birth_date="1990-08-05", gender="F",
    )
    envelope = Envelope.wrap(body, stream_id=f"registration-{pid}", correlation_id=new_id())
    return envelope.model_copy(update={"payload": envelope.payload | change}) if change else envelope


def activated(pid: str = PID) -> Envelope:
    body = AccountActivated(
        participant_id=pid, category=Category.BPU, kpj_number=KPJ, digital_card_id="1" * 32, programs=[Program.JKK, Program.JKM],
        full_name=NAME, email=EMAIL, phone=PHONE, notification_channel=OtpChannel.SMS,
    )
    return Envelope.wrap(body, stream_id=f"registration-{pid}", correlation_id=new_id())


def updated(pid: str = PID, session_id: str = "c" * 32) -> Envelope:
    address = Address(street="Jl. Melati No. 7", rt="002", rw="004", village="Tegal Gundil", district="Bogor Utara", city="Kota Bogor", province="Jawa Barat", postal_code="16152")
    values = ProfileValues(**NEW, address=address, blood_type="B")
    body = ProfileUpdated(
        participant_id=pid, session_id=session_id, changed_fields=[*NEW, "address", "blood_type"], new_values=values,
        contact_email=EMAIL, contact_phone=NEW["phone"], notification_channel=OtpChannel.SMS,
    )
    return Envelope.wrap(body, stream_id=f"profile-update-{session_id}", correlation_id=new_id())


def in_clear(doc: Any) -> list[str]:
    raw = json.dumps(doc, default=str)
    return [v for v in PERSONAL_VALUES if v in raw]


@pytest.mark.unit
async def test_the_stored_profile_holds_no_personal_value_in_clear_and_reads_back_as_folded() -> None:
    store = InMemoryProfileStore(FieldEncryptionCodec(InMemoryKeyRing()))
    events = [registered(), activated(), updated()]
    for e in events:
        await store.apply(e)
    stored = store.docs[PID]
    assert in_clear(stored) == []
    assert set(stored) - {PERSONAL} <= profiles.NOT_PERSONAL  # nothing personal outside the seal
    assert (stored["status"], stored["profile_version"], stored["applied"]) == ("ACTIVE", 1, sorted(e.message_id for e in events))
    assert "bank_account_number" in stored["last_changed_fields"]  # which fields changed stays readable, not their values
    folded = None
    for e in events:
        folded = profiles.apply(folded, e)
    assert await store.get(PID) == folded
    assert await store.get(new_id()) is None


@pytest.mark.unit
async def test_erasing_the_key_erases_the_profile_and_later_events_do_not_bring_it_back() -> None:
    keys = InMemoryKeyRing()
    store = InMemoryProfileStore(FieldEncryptionCodec(keys))
    first = registered()
    await store.apply(first)
    await store.apply(activated())
    keys.forget(participant_subject(PID))  # crypto-shredding

    assert await store.get(PID) is None  # not known any more: no session can start
    late = updated()
    await store.apply(late)  # a later event still folds its bookkeeping, but not the personal values it carries
    stored = store.docs[PID]
    assert stored[PERSONAL] == ERASED and in_clear(stored) == []
    assert (stored["status"], stored["profile_version"]) == ("ACTIVE", 1) and late.message_id in stored["applied"]
    await store.apply(registered())  # not even the whole registration again, in clear (a replay under new ids)
    assert store.docs[PID][PERSONAL] == ERASED and in_clear(store.docs[PID]) == []
    assert keys.key_for(participant_subject(PID), create=False) is None  # no key was made for it

    keys.key_for(participant_subject(PID), create=True)  # a key made anew (events of a session open at the erasure)
    await store.apply(updated())
    assert store.docs[PID][PERSONAL] == ERASED and await store.get(PID) is None
    await store.apply(first)  # a redelivery is still recognised
    assert store.docs[PID]["applied"].count(first.message_id) == 1


@pytest.mark.unit
async def test_a_profile_the_log_shows_erased_is_stored_erased_and_gets_no_key() -> None:
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    store = InMemoryProfileStore(codec)
    erased = {f: ERASED for f in ParticipantRegistered.PERSONAL_FIELDS}
    await store.apply(registered(**erased))  # relayed after the erasure: the log could not decrypt it
    assert store.docs[PID][PERSONAL] == ERASED and await store.get(PID) is None
    assert keys.key_for(participant_subject(PID), create=False) is None
    # what a rebuild writes for the same participant
    folded = profiles.apply(None, registered(**erased))
    assert folded is not None and (await stored_form(codec, folded))[PERSONAL] == ERASED


@pytest.mark.unit
async def test_a_profile_stored_before_sealing_reads_as_it_is_and_is_sealed_at_its_next_write() -> None:
    store = InMemoryProfileStore(FieldEncryptionCodec(InMemoryKeyRing()))
    legacy = profiles.apply(None, registered())
    assert legacy is not None
    store.docs[PID] = dict(legacy)
    assert await store.get(PID) == legacy
    await store.apply(activated())
    assert in_clear(store.docs[PID]) == [] and (await store.get(PID) or {}).get("nik") == NIK


@pytest.fixture
async def database(mongo_client: Any, database_prefix: str) -> Any:
    return mongo_client[f"{database_prefix}profiles_{new_id()[:8]}"]


@pytest.mark.integration
async def test_on_the_real_store_the_profile_is_sealed_with_the_logs_key_ring_and_erased_with_it(database: Any) -> None:
    master = os.urandom(32)
    ring = MongoKeyRing(database["data_keys"], master)
    store = MongoProfileStore(database["participant_profiles"], FieldEncryptionCodec(ring))
    other = new_id()
    for e in (registered(), activated(), updated(), registered(other)):
        await store.apply(e)
    raw = [d async for d in database["participant_profiles"].find({})]
    assert len(raw) == 2 and in_clear(raw) == []
    assert {d["_id"] async for d in database["data_keys"].find({})} == {participant_subject(PID), participant_subject(other)}

    # another process with the master key (a restarted service, the audit CLI) reads it in clear
    reader = MongoProfileStore(database["participant_profiles"], FieldEncryptionCodec(MongoKeyRing(database["data_keys"], master)))
    profile = await reader.get(PID)
    assert profile is not None and (profile["nik"], profile["phone"], profile["address"]["village"]) == (NIK, NEW["phone"], "Tegal Gundil")

    await ring.erase(participant_subject(PID))
    fresh = MongoProfileStore(database["participant_profiles"], FieldEncryptionCodec(MongoKeyRing(database["data_keys"], master)))
    assert await fresh.get(PID) is None and (await fresh.get(other) or {}).get("nik") == NIK
    await fresh.apply(activated())
    doc = await database["participant_profiles"].find_one({"_id": PID})
    assert doc[PERSONAL] == ERASED and doc["status"] == "ACTIVE" and "wrapped" not in (await database["data_keys"].find_one({"_id": participant_subject(PID)}) or {})


class Profiles:
    """A profile store (in memory or on the real store) with its key ring, what it stores, and how
    often it read a stored profile."""

    def __init__(self, store: Any, ring: Any, stored: Any, reads: Any, twin: Any) -> None:
        self.store, self.ring, self._stored, self._reads, self.twin = store, ring, stored, reads, twin

    async def doc(self, pid: str = PID) -> dict[str, Any] | None:
        return await self._stored(pid)

    def reads(self) -> int:
        return int(self._reads())

    async def has_key(self, pid: str = PID) -> bool:
        """Whether the ring holds a usable key for ``pid`` (read from the ring's store, not its cache)."""
        await self.ring.load([participant_subject(pid)], create=False)
        return self.ring.key_for(participant_subject(pid), create=False) is not None


class CountingMemoryStore(InMemoryProfileStore):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.loads = 0

    async def _load(self, participant_id: str) -> dict[str, Any] | None:
        self.loads += 1
        return await super()._load(participant_id)


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.integration)])
async def both(request: Any) -> Any:
    """The same checks on the in-memory twin and on the real store (FerretDB)."""
    if request.param == "memory":
        ring = InMemoryKeyRing()
        memory = CountingMemoryStore(FieldEncryptionCodec(ring))

        async def stored_in_memory(pid: str) -> dict[str, Any] | None:
            return memory.docs.get(pid)

        def memory_twin() -> InMemoryProfileStore:
            twin = InMemoryProfileStore(FieldEncryptionCodec(ring))
            twin.docs = memory.docs  # another instance of the service: the same documents, locks of its own
            return twin

        yield Profiles(memory, ring, stored_in_memory, lambda: memory.loads, memory_twin)
        return
    infra, prefix = request.getfixturevalue("infra"), request.getfixturevalue("database_prefix")
    commands = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[commands])  # the store's own commands, counted
    looking: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)  # the test's look-ups, not counted
    db = looking[f"{prefix}profiles_{new_id()[:8]}"]
    master = os.urandom(32)
    ring = MongoKeyRing(db["data_keys"], master, cache_seconds=0)  # every look-up asks the store
    store = MongoProfileStore(client[db.name]["participant_profiles"], FieldEncryptionCodec(MongoKeyRing(client[db.name]["data_keys"], master, cache_seconds=0)))

    async def stored_in_mongo(pid: str) -> dict[str, Any] | None:
        return await db["participant_profiles"].find_one({"_id": pid})

    def mongo_twin() -> MongoProfileStore:  # another instance of the service: another process's store over the same collection
        return MongoProfileStore(client[db.name]["participant_profiles"], FieldEncryptionCodec(MongoKeyRing(client[db.name]["data_keys"], master, cache_seconds=0)))

    yield Profiles(store, ring, stored_in_mongo, lambda: len(commands.of("find", "participant_profiles")), mongo_twin)
    await client.close()
    await looking.close()


@pytest.mark.unit
async def test_a_registration_whose_key_exists_is_inserted_without_a_read_and_a_redelivery_is_applied_once(both: Profiles) -> None:
    await both.ring.load([participant_subject(PID)], create=True)  # as the gateway did, sealing the registration on Kafka
    first = registered()
    await both.store.apply(first)
    assert both.reads() == 0  # one insert, no read before it
    doc = await both.doc()
    assert doc is not None and in_clear(doc) == [] and doc["applied"] == [first.message_id]
    assert await both.store.get(PID) == profiles.apply(None, first)

    await both.store.apply(first)  # redelivered: the insert meets the profile, which knows it applied it
    then = activated()
    await both.store.apply(then)
    await both.store.apply(first)
    again = await both.doc()
    assert again is not None and again["applied"] == sorted([first.message_id, then.message_id])
    profile = await both.store.get(PID)
    assert profile is not None and (profile["status"], profile["nik"], profile["kpj_number"]) == ("ACTIVE", NIK, KPJ)  # not folded from scratch again


@pytest.mark.unit
async def test_an_erased_participants_registration_redelivered_creates_no_key_and_stores_nothing_personal(both: Profiles) -> None:
    await both.ring.load([participant_subject(PID)], create=True)
    first = registered()
    await both.store.apply(first)
    await both.store.apply(activated())
    await both.ring.erase(participant_subject(PID))  # jmo privacy erase: a tombstone in place of the key
    before = await both.doc()

    await both.store.apply(first)  # redelivered: recognised, nothing written (its seal no longer opens)
    assert await both.doc() == before and not await both.has_key() and await both.store.get(PID) is None
    await both.store.apply(registered())  # replayed under a new id: folded, without its personal values
    doc = await both.doc()
    assert doc is not None and doc[PERSONAL] == ERASED and in_clear(doc) == [] and doc["status"] == "ACTIVE"
    assert not await both.has_key() and await both.store.get(PID) is None
    assert doc["applied"].count(first.message_id) == 1 and len(doc["applied"]) == 3


@pytest.mark.unit
async def test_a_registration_of_a_participant_without_a_key_reads_first_and_makes_the_key_only_for_a_new_profile(both: Profiles) -> None:
    erased_first = registered(**{f: ERASED for f in ParticipantRegistered.PERSONAL_FIELDS})  # the log could not decrypt it
    await both.store.apply(erased_first)
    assert not await both.has_key()
    await both.store.apply(registered())  # a replay in clear meets a profile stored erased: no key, nothing personal
    doc = await both.doc()
    assert doc is not None and doc[PERSONAL] == ERASED and in_clear(doc) == [] and not await both.has_key()

    other = new_id()
    await both.store.apply(registered(other))  # no profile and no key yet: read, then a key made for the new profile
    assert both.reads() >= 1 and await both.has_key(other)
    assert (await both.store.get(other) or {}).get("nik") == NIK


@pytest.mark.integration
async def test_a_registration_kept_as_it_came_on_kafka_is_inserted_without_a_key_look_up_and_sealed_anew_at_the_next_write(infra: Any, database_prefix: str) -> None:
    commands = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[commands])
    try:
        db = client[f"{database_prefix}profiles_{new_id()[:8]}"]
        master = os.urandom(32)
        gateway = FieldEncryptionCodec(MongoKeyRing(db["data_keys"], master))  # the key the gateway made to seal the registration
        first, other = registered(), registered(new_id())
        on_wire, other_on_wire = await seal_envelope(gateway, first), await seal_envelope(gateway, other)
        store = MongoProfileStore(db["participant_profiles"], FieldEncryptionCodec(MongoKeyRing(db["data_keys"], master, cache_seconds=0)))  # a ring that has not seen the key
        commands.clear()
        await store.apply(on_wire)  # as its consumer keeps it: sealed, unopened
        assert commands.names == ["insert"]  # no key look-up, no read
        doc = await db["participant_profiles"].find_one({"_id": PID})
        assert doc is not None and in_clear(doc) == [] and PERSONAL not in doc and set(doc[AS_SENT]) == {"nik", "full_name", "birth_date", "gender", "email", "phone"}
        assert await store.get(PID) == profiles.apply(None, first)  # opened with the participant's key when read

        await store.apply(on_wire)  # redelivered: recognised as applied
        then = activated()
        await store.apply(await seal_envelope(gateway, then))  # a later event kept sealed is opened to be folded
        doc = await db["participant_profiles"].find_one({"_id": PID})
        assert doc is not None and AS_SENT not in doc and in_clear(doc) == [] and doc["applied"] == sorted([first.message_id, then.message_id])
        profile = await store.get(PID)
        assert profile is not None and (profile["status"], profile["nik"], profile["kpj_number"], profile["full_name"]) == ("ACTIVE", NIK, KPJ, NAME)

        forged = await seal_envelope(gateway, activated(other.payload["participant_id"]))
        forged = forged.model_copy(update={"payload": forged.payload | {"full_name": on_wire.payload["full_name"]}})  # PID's name, sealed for PID's registration
        await store.apply(other_on_wire)
        with pytest.raises(Unprocessable) as refused:  # someone else's sealed value: parked with its reason, nothing folded
            await store.apply(forged)
        assert refused.value.reason == "SEALED_VALUE_INVALID"

        gone = other.payload["participant_id"]
        await MongoKeyRing(db["data_keys"], master).erase(participant_subject(gone))
        assert await store.get(gone) is None  # erased with the key: it no longer opens
        assert await blank_personal(db["participant_profiles"], gone) == 1 and await blank_personal(db["participant_profiles"], PID) == 1  # jmo privacy erase: either form
        for pid in (gone, PID):
            blanked = await db["participant_profiles"].find_one({"_id": pid})
            assert blanked is not None and blanked[PERSONAL] == ERASED and AS_SENT not in blanked and blanked["applied"]
        assert await blank_personal(db["participant_profiles"], PID) == 0  # blanked already
    finally:
        await client.close()


@pytest.mark.unit
async def test_two_instances_folding_into_one_profile_at_once_lose_neither_event(both: Profiles) -> None:
    """Two sessions of one participant confirmed at once, on two instances (their commands are on
    different partitions): both read the profile before either writes. The per-participant lock
    of one process does not serialise them; the write that comes second must not replace the first."""
    await both.ring.load([participant_subject(PID)], create=True)
    await both.store.apply(registered())
    await both.store.apply(activated())
    instances = [both.store, both.twin()]
    both_read = asyncio.Barrier(len(instances))
    for store in instances:
        load = store._load  # noqa: SLF001 (the read of the read-fold-write, held until both have read)

        async def held(participant_id: str, load: Any = load, waited: list[bool] = []) -> Any:  # noqa: B006 (one list per store)
            doc = await load(participant_id)
            if not waited:
                waited.append(True)
                await both_read.wait()
            return doc

        store._load = held  # noqa: SLF001
    first, second = updated(session_id="a" * 32), updated(session_id="b" * 32)
    await asyncio.gather(instances[0].apply(first), instances[1].apply(second))

    doc = await both.doc()
    assert doc is not None and {first.message_id, second.message_id} <= set(doc["applied"]) and len(doc["applied"]) == 4
    assert (doc["profile_version"], sorted(doc["sessions"])) == (2, ["a" * 32, "b" * 32])


@pytest.mark.unit
async def test_the_per_participant_locks_are_kept_only_while_in_use() -> None:
    """One lock per participant ever folded would grow with the log: they go once released."""
    ring = InMemoryKeyRing()
    store = InMemoryProfileStore(FieldEncryptionCodec(ring))
    pids = [new_id() for _ in range(20)]
    for pid in pids:
        await ring.load([participant_subject(pid)], create=True)
    await asyncio.gather(*(store.apply(registered(pid)) for pid in pids), *(store.apply(activated(pid)) for pid in pids))
    assert len(store._locks) == 0  # noqa: SLF001
    statuses = [(await store.get(pid) or {}).get("status") for pid in pids]
    assert statuses == ["ACTIVE"] * len(pids)  # folded all the same
