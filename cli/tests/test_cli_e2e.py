"""The ``jmo`` command as a person uses it, against the real stack."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
JMO = str(Path(sys.executable).with_name("jmo"))
SITI = {"category": "BPU", "nik": "3201014508900001", "full_name": "Siti Aminah", "email": "siti@example.com", "phone": "081234567890", "otp_channel": "email"}


@pytest.fixture
def jmo(infra: Any, topic_prefix: str, database_prefix: str, service_keys: dict[str, str]):  # noqa: ANN201
    # the CLI reads the logs with the services' keys (JMO_DATA_KEY), as a person at the stack would
    env = os.environ | service_keys | {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "MONGODB_URI": infra.mongodb_uri, "JMO_TOPIC_PREFIX": topic_prefix, "JMO_DATABASE_PREFIX": database_prefix} | infra.kafka_tool_env()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([JMO, *args], env=env, capture_output=True, text=True, timeout=120, check=False)

    return run


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_a_person_registers_reads_the_history_verifies_and_rebuilds_with_jmo(jmo: Any, service_runner: Any, infra: Any, database_prefix: str) -> None:
    service_runner("registration")
    sent = jmo("gateway", "send", "RegisterParticipant", "--data", json.dumps(SITI), "--wait", "60", "--until", "ParticipantRegistered")
    assert sent.returncode == 0, sent.stderr
    [receipt, event] = lines(sent.stdout)
    assert event["type"] == "ParticipantRegistered" and event["correlation_id"] == receipt["correlation_id"]
    stream = receipt["stream_id"]

    history = jmo("audit", "history", stream)
    assert history.returncode == 0, history.stderr
    assert [(e["service"], e["type"], e["stream_version"]) for e in lines(history.stdout)] == [("registration", "ParticipantRegistered", 1)]
    by_participant = jmo("audit", "history", event["payload"]["participant_id"])
    assert [e["message_id"] for e in lines(by_participant.stdout)] == [event["message_id"]]

    assert jmo("audit", "verify").returncode == 0

    db = f"{database_prefix}jmo_registration"
    rebuilt = jmo("audit", "rebuild", "registrations")
    assert rebuilt.returncode == 0, rebuilt.stderr
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        row = await client[db]["read_registrations"].find_one({"_id": stream})
        assert (row["status"], row["category"], row["participant_id"]) == ("REGISTERED", "BPU", event["payload"]["participant_id"])
        assert "nik" not in row and "full_name" not in row
        # an auditor's nightmare: someone edits a stored event behind the log's back
        commit = await client[db]["events_commits"].find_one({"stream_id": stream})
        commit["events"][0]["payload"]["email"] = "attacker@example.com"
        await client[db]["events_commits"].replace_one({"_id": commit["_id"]}, commit)
    finally:
        await client.close()
    tampered = jmo("audit", "verify")
    assert tampered.returncode == 1
    assert stream in {p["stream_id"] for p in lines(tampered.stdout)}


def test_an_unknown_command_type_is_refused_before_anything_is_sent(jmo: Any) -> None:
    result = jmo("gateway", "send", "LaunchRocket", "--data", "{}", "--wait", "1")
    assert result.returncode == 2 and "LaunchRocket" in result.stderr



async def test_a_person_sends_a_selfie_file_with_jmo_and_it_is_matched_with_the_ktp_photo(jmo: Any, service_runner: Any, infra: Any, database_prefix: str) -> None:
    from jmo_contracts import new_id
    from jmo_registries import identities

    faces = Path(__file__).parents[2] / "services" / "biometric" / "tests" / "data" / "faces"
    person = next(p for p in identities("BPU", 50) if p["photo"] and Path(p["photo"]).name == "biden.jpg")
    service_runner("registration")
    service_runner("biometric", {"JMO_BIOMETRIC_WORKERS": "1"}, timeout=120)
    data = {"category": "BPU", "nik": person["nik"], "full_name": person["full_name"], "email": "selfie@example.com", "phone": "081234560001", "otp_channel": "email"}
    sent = jmo("gateway", "send", "RegisterParticipant", "--data", json.dumps(data), "--wait", "60", "--until", "ParticipantRegistered")
    participant_id = lines(sent.stdout)[-1]["payload"]["participant_id"]
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:  # biometric has taken ParticipantRegistered (it keeps the NIK, sealed)
        for _ in range(200):
            if await client[f"{database_prefix}jmo_biometric"]["participants"].find_one({"_id": participant_id}) is not None:
                break
            await asyncio.sleep(0.2)
    finally:
        await client.close()
    selfie = jmo("gateway", "send", "SubmitSelfie", "--image", str(faces / "biden2.jpg"), "--data", json.dumps({"participant_id": participant_id, "session_id": new_id()}), "--wait", "90")
    assert selfie.returncode == 0, selfie.stderr
    [uploaded, receipt, outcome] = lines(selfie.stdout)
    assert uploaded["content_type"] == "image/jpeg" and len(uploaded["sha256"]) == 64 and receipt["sent"] == "SubmitSelfie"
    assert outcome["type"] == "SelfieMatched", outcome


async def test_a_participant_erased_with_jmo_reads_as_erased_in_every_log_and_the_logs_still_verify(jmo: Any, service_runner: Any) -> None:
    service_runner("registration"), service_runner("identity")
    data = SITI | {"nik": "3201014508900003", "email": "hapus@example.com", "phone": "081234567893"}
    sent = jmo("gateway", "send", "RegisterParticipant", "--data", json.dumps(data), "--wait", "60", "--until", "OtpIssued")
    assert sent.returncode == 0, sent.stderr
    participant = lines(sent.stdout)[-1]["payload"]["participant_id"]
    before = jmo("audit", "history", participant)
    assert data["nik"] in before.stdout and data["email"] in before.stdout  # read with the services' key

    assert jmo("privacy", "erase", participant, "--yes").returncode == 2  # not without a reason and who asked
    erased = jmo("privacy", "erase", participant, "--reason", "permintaan peserta", "--requested-by", "DPO ticket PDP-1")
    assert erased.returncode == 0, erased.stderr
    assert set(lines(erased.stdout)[0]["erased"]) == {"registration", "identity", "biometric", "profile-update", "notification"}

    after = jmo("audit", "history", participant)
    events = lines(after.stdout)
    assert {e["service"] for e in events} >= {"registration", "identity"} and len(events) == len(lines(before.stdout))
    assert not [v for v in (data["nik"], data["email"], "+6281234567893", "SITI AMINAH") if v in after.stdout]
    registered = next(e for e in events if e["type"] == "ParticipantRegistered")
    assert registered["payload"]["nik"] == "[erased]" and registered["payload"]["category"] == "BPU"  # what happened stays
    verified = jmo("audit", "verify")  # the session's logs are shared: another test alters a registration on purpose
    assert "registration: " in verified.stderr and not {p["stream_id"] for p in lines(verified.stdout)} & {e["stream_id"] for e in events}


async def test_a_command_for_an_erased_participant_is_refused_with_a_reason_and_registration_goes_on(jmo: Any, service_runner: Any) -> None:
    registration = service_runner("registration")
    data = SITI | {"nik": "3201014508900004", "email": "lupa@example.com", "phone": "081234567894"}
    sent = jmo("gateway", "send", "RegisterParticipant", "--data", json.dumps(data), "--wait", "60", "--until", "ParticipantRegistered")
    assert sent.returncode == 0, sent.stderr
    receipt, registered = lines(sent.stdout)[0], lines(sent.stdout)[-1]
    participant = registered["payload"]["participant_id"]
    erased = jmo("privacy", "erase", participant, "--reason", "permintaan peserta", "--requested-by", "DPO ticket PDP-7")
    assert erased.returncode == 0, erased.stderr
    # a running instance holds the participant's key in memory for up to a minute (MongoKeyRing's
    # cache_seconds); an instance started since, as this one, knows of the erasure at once
    registration.restart()

    # a late step of the erased registration: the gateway can no longer seal it (it sends the erased
    # marker in place of each personal value) and the service refuses it at the topic's boundary
    details = {"occupation": "Pedagang keliling", "work_location": "Kabupaten Bogor", "monthly_income": 2500000, "join_jht": True}
    late = jmo("gateway", "send", "ProvideEmploymentDetails", "--data", json.dumps(details), "--stream-id", registered["stream_id"],
               "--correlation-id", receipt["correlation_id"], "--wait", "60")
    assert late.returncode == 0, late.stderr
    refusal = lines(late.stdout)[-1]
    assert refusal["type"] == "CommandRejected" and refusal["payload"]["reason_code"] == "PARTICIPANT_ERASED", refusal
    assert refusal["payload"]["command_type"] == "ProvideEmploymentDetails"

    # the consumer went on: the next person registers
    other = jmo("gateway", "send", "RegisterParticipant", "--data", json.dumps(SITI | {"nik": "3201014508900005", "email": "lain@example.com", "phone": "081234567895"}),
                "--wait", "60", "--until", "ParticipantRegistered")
    assert lines(other.stdout)[-1]["type"] == "ParticipantRegistered", other.stdout + other.stderr

    history = lines(jmo("audit", "history", participant).stdout)
    assert [e["type"] for e in history] == ["ParticipantRegistered"]  # refused at the boundary: the participant's stream is not touched
    assert history[0]["payload"]["birth_date"] == "[erased]" and data["nik"] not in json.dumps(history)
    verified = jmo("audit", "verify")  # the session's logs are shared: another test alters a registration on purpose
    assert "registration: " in verified.stderr and "audit: " in verified.stderr
    assert registered["stream_id"] not in {p["stream_id"] for p in lines(verified.stdout)}
