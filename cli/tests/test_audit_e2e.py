"""An auditor's questions, answered by ``jmo`` against the real store: a participant's state at an
instant, who read it, and an erasure that is itself recorded.

The participant's journey is written to the services' logs through the event store API, with the
services' own contracts, key rings and the profile read model's adapter (what the services write);
the services' journeys themselves are covered by their own and the cross-service tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, Message, new_id
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.profile_update import ProfileUpdated, ProfileUpdateStarted, ProfileValues
from jmo_contracts.registration import AccountActivated, EmploymentDetailsRecorded, ParticipantRegistered, Program
from jmo_eventstore import MongoEventStore
from jmo_profile_update.adapters.profiles import COLLECTION, MongoProfileStore
from jmo_registration.adapters.accounts import MongoKpjReservations, MongoNikIndex
from jmo_runtime import ServiceSettings
from jmo_runtime.service import personal_data_codec

pytestmark = [pytest.mark.e2e]
JMO = str(Path(sys.executable).with_name("jmo"))
T0 = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 10:00 WIB
OLD_PHONE, NEW_PHONE = "+6281234500001", "+6281234500002"
NIK = "3201014508900011"


@pytest.fixture
def prefix(database_prefix: str) -> str:
    return f"{database_prefix}audit_"  # logs of their own: another test alters a commit of the session's logs on purpose


@pytest.fixture
def settings(infra: Any, prefix: str, service_keys: dict[str, str]) -> ServiceSettings:
    return ServiceSettings.model_validate({"MONGODB_URI": infra.mongodb_uri, "database_prefix": prefix, "data_key": service_keys["JMO_DATA_KEY"]})


@pytest.fixture
def jmo(infra: Any, prefix: str, service_keys: dict[str, str]):  # noqa: ANN201
    env = os.environ | service_keys | {"MONGODB_URI": infra.mongodb_uri, "JMO_DATABASE_PREFIX": prefix, "JMO_AUDITOR": "auditor.budi"}

    def run(*args: str, without: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run([JMO, *args], env={k: v for k, v in env.items() if k not in without}, capture_output=True, text=True, timeout=120, check=False)

    return run


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def _append(client: AsyncMongoClient, settings: ServiceSettings, service: str, stream: str, events: list[tuple[Message, datetime]]) -> None:
    db = client[settings.database_for(service)]
    store = MongoEventStore(db, name="events", codec=personal_data_codec(db, settings))
    version = len(await store.read_stream(stream))
    for message, at in events:
        envelope = Envelope.wrap(message, stream_id=stream, correlation_id=new_id(), occurred_at=at)
        await store.append(stream, version, [envelope], cause_id=new_id())
        version += 1
        if service in ("registration", "profile-update"):  # the profile read model, as profile-update folds it
            pdb = client[settings.database_for("profile-update")]
            await MongoProfileStore(pdb[COLLECTION], personal_data_codec(pdb, settings)).apply(envelope)


async def a_registered_participant_who_changed_their_phone(settings: ServiceSettings, index_key: bytes = bytes(32)) -> tuple[str, str]:
    participant, session = new_id(), new_id()
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri)
    registration = client[settings.database_for("registration")]
    # what registration, biometric and notification keep beside their logs
    await MongoNikIndex(registration["nik_index"], index_key).claim(NIK, f"registration-{participant}")
    kpj = await MongoKpjReservations(registration["kpj_numbers"], index_key).reserve(participant, f"registration-{participant}")
    await client[settings.database_for("notification")]["contacts"].insert_one({"_id": participant, "email": "sealed", "phone": "sealed"})
    await client[settings.database_for("biometric")]["participants"].insert_one({"_id": participant, "nik": "sealed"})
    registered = ParticipantRegistered(
        participant_id=participant, category=Category.BPU, nik=NIK, full_name="SITI AUDIT", email="audit@example.com", phone=OLD_PHONE,
        otp_channel=OtpChannel.EMAIL, birth_date=date(1990, 8, 5), gender="F",
    )
    employment = EmploymentDetailsRecorded(participant_id=participant, category=Category.BPU, occupation="Pedagang keliling", work_location="Kabupaten Bogor", monthly_income=2_500_000, join_jht=True)
    activated = AccountActivated(
        participant_id=participant, category=Category.BPU, kpj_number=kpj, digital_card_id=new_id(), programs=[Program.JKK, Program.JKM],
        full_name="SITI AUDIT", email="audit@example.com", phone=OLD_PHONE, notification_channel=OtpChannel.EMAIL,
    )
    started = ProfileUpdateStarted(participant_id=participant, session_id=session, expires_at=T0 + timedelta(hours=2))
    updated = ProfileUpdated(
        participant_id=participant, session_id=session, changed_fields=["phone"], new_values=ProfileValues(phone=NEW_PHONE),
        contact_email="audit@example.com", contact_phone=NEW_PHONE, notification_channel=OtpChannel.EMAIL,
    )
    try:
        await _append(client, settings, "registration", f"registration-{participant}", [(registered, T0), (employment, T0 + timedelta(minutes=5)), (activated, T0 + timedelta(minutes=10))])
        await _append(client, settings, "profile-update", f"profile-update-{session}", [(started, T0 + timedelta(hours=1)), (updated, T0 + timedelta(hours=1, minutes=10))])
    finally:
        await client.close()
    return participant, session


async def test_an_auditor_sees_the_old_phone_before_the_change_and_the_new_one_after_and_the_reads_are_listed(jmo: Any, settings: ServiceSettings) -> None:
    participant, session = await a_registered_participant_who_changed_their_phone(settings)

    before = jmo("audit", "state", participant, "--at", "2026-03-03T10:30:00+07:00")
    after = jmo("audit", "state", participant, "--at", (T0 + timedelta(hours=2)).isoformat(), "--by", "dpo.rina")

    assert before.returncode == 0, before.stderr
    then, now = json.loads(before.stdout), json.loads(after.stdout)
    assert then["profile"]["phone"] == OLD_PHONE and then["profile"]["status"] == "ACTIVE" and then["sessions"] == []
    assert then["registration"]["state"]["status"] == "ACTIVE" and then["registration"]["version"] == 3
    assert now["profile"]["phone"] == NEW_PHONE and now["profile"]["profile_version"] == 1
    assert [(s["session_id"], s["state"]["step"]) for s in now["sessions"]] == [(session, "UPDATED")]
    early = json.loads(jmo("audit", "state", participant, "--at", (T0 + timedelta(minutes=7)).isoformat()).stdout)
    assert early["registration"]["state"]["status"] == "NIK_VERIFICATION" and early["registration"]["state"]["employment"]["monthly_income"] == 2_500_000

    reads = lines(jmo("audit", "access", participant).stdout)
    assert [(r["type"], r["payload"]["read_by"], r["payload"]["command"]) for r in reads] == [
        ("ParticipantDataAccessed", "auditor.budi", "state"), ("ParticipantDataAccessed", "dpo.rina", "state"), ("ParticipantDataAccessed", "auditor.budi", "state"),
    ]
    assert reads[0]["payload"]["filters"] == {"at": "2026-03-03T03:30:00+00:00"} and reads[0]["payload"]["decrypted"] is True


async def test_history_filters_by_time_and_type_and_is_recorded(jmo: Any, settings: ServiceSettings) -> None:
    participant, _ = await a_registered_participant_who_changed_their_phone(settings)

    everything = lines(jmo("audit", "history", participant).stdout)
    updates = lines(jmo("audit", "history", participant, "--type", "ProfileUpdated", "--type", "AccountActivated").stdout)
    first_hour = lines(jmo("audit", "history", participant, "--from", T0.isoformat(), "--to", (T0 + timedelta(minutes=59)).isoformat()).stdout)

    assert [e["type"] for e in everything] == ["ParticipantRegistered", "EmploymentDetailsRecorded", "AccountActivated", "ProfileUpdateStarted", "ProfileUpdated"]
    assert [e["type"] for e in updates] == ["AccountActivated", "ProfileUpdated"]
    assert [e["service"] for e in first_hour] == ["registration"] * 3
    reads = lines(jmo("audit", "access", participant).stdout)
    assert [r["payload"]["filters"].get("type") for r in reads] == [None, "ProfileUpdated,AccountActivated", None]
    assert jmo("audit", "state", participant, "--at", "2026-03-03T10:30:00").returncode == 2  # no UTC offset: which of three time zones?


async def test_an_erasure_is_recorded_reaches_the_look_ups_and_every_chain_still_verifies(jmo: Any, settings: ServiceSettings, service_keys: dict[str, str]) -> None:
    import base64

    participant, session = await a_registered_participant_who_changed_their_phone(settings, base64.b64decode(service_keys["JMO_NIK_INDEX_KEY"]))
    assert jmo("audit", "state", participant, "--at", T0.isoformat()).returncode == 0

    assert jmo("privacy", "erase", participant).returncode == 2  # who asked, and why?
    why = ("--reason", "Permintaan penghapusan data oleh peserta", "--requested-by", "DPO ticket PDP-2026-0042")
    blind = jmo("privacy", "erase", participant, *why, without=("JMO_DATA_KEY",))  # could not find the NIK claim once the key is gone
    assert blind.returncode == 2 and "nothing erased" in blind.stderr
    erased = jmo("privacy", "erase", participant, *why)

    assert erased.returncode == 0, erased.stderr
    done = json.loads(erased.stdout)
    assert {k: v for k, v in done["cleared"].items() if v} == {
        "notification/contacts": 1, "biometric/participants": 1, "registration/nik_index": 1, "registration/kpj_numbers": 1, "profile-update/participant_profiles": 1,
    }
    trail = lines(jmo("audit", "access", participant).stdout)
    assert [t["type"] for t in trail] == ["ParticipantDataAccessed", "ParticipantErased"]
    fact = trail[-1]["payload"]
    assert (fact["requested_by"], fact["reason"], fact["erased_by"]) == ("DPO ticket PDP-2026-0042", "Permintaan penghapusan data oleh peserta", "auditor.budi")
    assert NIK not in json.dumps(trail) and OLD_PHONE not in json.dumps(trail)
    verified = jmo("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit: " in verified.stderr and "registration: " in verified.stderr
    after = jmo("audit", "state", participant, "--at", (T0 + timedelta(hours=2)).isoformat())
    assert after.returncode == 0, after.stderr
    assert not [v for v in (NIK, OLD_PHONE, NEW_PHONE, "SITI AUDIT", "audit@example.com") if v in after.stdout]
    state = json.loads(after.stdout)
    assert state["registration"]["state"]["status"] == "ACTIVE" and state["profile"]["phone"] == "[erased]"  # what happened stays
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri)
    try:
        registration = client[settings.database_for("registration")]
        assert not [d async for d in registration["nik_index"].find({"stream_id": f"registration-{participant}"})]  # the person may register again
        assert not [d async for d in registration["kpj_numbers"].find({"stream_id": f"registration-{participant}"})]
        profile = await client[settings.database_for("profile-update")][COLLECTION].find_one({"_id": participant})
        assert profile["personal"] == "[erased]" and profile["sessions"] == [session]
    finally:
        await client.close()
