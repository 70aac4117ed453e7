"""``jmo audit rebuild participant-profiles`` on the real store: the rebuilt profiles are sealed with
profile-update's key ring exactly as the live read model is, and an erased participant stays erased."""

from __future__ import annotations

import json
import os

import pytest
from pymongo import AsyncMongoClient

from jmo_cli.audit import rebuild
from jmo_cli.projections import PROJECTIONS
from jmo_contracts import Envelope, new_id
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.profile_update import ProfileUpdated, ProfileValues
from jmo_contracts.registration import AccountActivated, ParticipantRegistered, Program
from jmo_eventstore import ERASED, FieldEncryptionCodec, MongoEventStore, MongoKeyRing, participant_subject
from jmo_profile_update.adapters.profiles import MongoProfileStore
from jmo_profile_update.domain import profile as profiles

pytestmark = pytest.mark.integration
NIK, NAME, EMAIL, PHONE, KPJ, NEW_PHONE = "3201014508900001", "SITI AMINAH", "siti@example.com", "+6281234567890", "26112100042", "+6281388800022"


def registration_events(pid: str) -> list[Envelope]:
    stream = f"registration-{pid}"
    registered = ParticipantRegistered(participant_id=pid, category=Category.BPU, nik=NIK, full_name=NAME, email=EMAIL, phone=PHONE, otp_channel=OtpChannel.SMS, birth_date="1990-08-05", gender="F")
    activated = AccountActivated(
        participant_id=pid, category=Category.BPU, kpj_number=KPJ, digital_card_id="1" * 32, programs=[Program.JKK], full_name=NAME, email=EMAIL, phone=PHONE,
        notification_channel=OtpChannel.SMS,
    )
    return [Envelope.wrap(m, stream_id=stream, correlation_id=new_id()) for m in (registered, activated)]


def profile_updated(pid: str) -> Envelope:
    sid = new_id()
    body = ProfileUpdated(
        participant_id=pid, session_id=sid, changed_fields=["phone"], new_values=ProfileValues(phone=NEW_PHONE), contact_email=EMAIL, contact_phone=NEW_PHONE,
        notification_channel=OtpChannel.SMS,
    )
    return Envelope.wrap(body, stream_id=f"profile-update-{sid}", correlation_id=new_id())


async def test_rebuilt_profiles_are_sealed_like_the_live_ones_and_erased_participants_stay_erased(mongo_client: AsyncMongoClient, database_prefix: str) -> None:
    master, run = os.urandom(32), new_id()[:8]
    dbs = {name: mongo_client[f"{database_prefix}rb{run}_{name.replace('-', '_')}"] for name in ("registration", "profile-update")}
    rings = {name: MongoKeyRing(db["data_keys"], master) for name, db in dbs.items()}  # each service its own ring, as deployed
    stores = {name: MongoEventStore(db, name="events", codec=FieldEncryptionCodec(rings[name])) for name, db in dbs.items()}
    kept, erased = new_id(), new_id()
    events = {pid: [*registration_events(pid), profile_updated(pid)] for pid in (kept, erased)}
    live = MongoProfileStore(dbs["profile-update"]["participant_profiles"], stores["profile-update"].codec)
    for store in stores.values():
        await store.ensure_indexes()
    for pid, (registered, activated, updated) in events.items():
        await stores["registration"].append(registered.stream_id, 0, [registered, activated], cause_id=new_id())
        await stores["profile-update"].append(updated.stream_id, 0, [updated], cause_id=new_id())
        for e in (registered, activated, updated):
            await live.apply(e)
    for ring in rings.values():  # the participant is erased: their key deleted in every service's ring
        await ring.erase(participant_subject(erased))

    assert await rebuild(stores, PROJECTIONS["participant-profiles"], into="rebuilt") == 2
    raw = [d async for d in dbs["profile-update"]["rebuilt"].find({})]
    assert not [v for v in (NIK, NAME, EMAIL, PHONE, KPJ, NEW_PHONE, "1990-08-05") if v in json.dumps(raw, default=str)]

    rebuilt = MongoProfileStore(dbs["profile-update"]["rebuilt"], stores["profile-update"].codec)
    folded = None
    for e in events[kept]:
        folded = profiles.apply(folded, e)
    assert await rebuilt.get(kept) == await live.get(kept) == folded  # the same profile, under the same key
    assert await rebuilt.get(erased) is None and await live.get(erased) is None
    [gone] = [d for d in raw if d["_id"] == erased]
    assert gone["personal"] == ERASED and gone["status"] == "ACTIVE"
    assert "wrapped" not in (await dbs["profile-update"]["data_keys"].find_one({"_id": participant_subject(erased)}) or {})  # no key made for them: a tombstone
