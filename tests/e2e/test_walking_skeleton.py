"""The walking skeleton through the real stack: Kafka broker, FerretDB, the service as a process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_cli.gateway import Gateway, command_envelope
from jmo_contracts import topics
from jmo_devstack.topics import read_records

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
COMMANDS = topics.commands("registration")

BUDI = {"category": "PU", "nik": "3201010508900001", "full_name": "Budi Santoso", "email": "budi@example.com", "phone": "081234567890", "otp_channel": "sms"}


async def test_the_gateway_registers_a_participant_and_reads_it_back_through_kafka_and_the_store(infra: Any, topic_prefix: str, service_runner: Any, database_prefix: str) -> None:
    service_runner("registration")
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        command = command_envelope("RegisterParticipant", BUDI)
        await gateway.send(command)
        [event] = await gateway.until(command.correlation_id, {"ParticipantRegistered", "CommandRejected"}, timeout=60)
    assert (event.type, event.causation_id, event.stream_id) == ("ParticipantRegistered", command.message_id, command.stream_id)
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        stored = await client[f"{database_prefix}jmo_registration"]["events_commits"].find_one({"stream_id": command.stream_id})
    finally:
        await client.close()
    assert stored["cause_id"] == command.message_id
    assert [e["type"] for e in stored["events"]] == ["ParticipantRegistered"]


async def test_a_malformed_message_goes_to_the_dlq_and_the_service_keeps_consuming(infra: Any, topic_prefix: str, service_runner: Any) -> None:
    service = service_runner("registration")
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        partition, offset = await gateway.send_raw(COMMANDS, b"this is not an envelope", key=b"registration-x")
        command = command_envelope("RegisterParticipant", BUDI | {"nik": "3201010508900002"})
        await gateway.send(command)
        [event] = await gateway.until(command.correlation_id, {"ParticipantRegistered", "CommandRejected"}, timeout=60)
    assert event.type == "ParticipantRegistered"
    source = f"{topic_prefix}{COMMANDS}/{partition}/{offset}".encode()  # other tests of the session park messages there too
    everything = await read_records(infra.kafka_bootstrap, topic_prefix + topics.dlq(COMMANDS), 100_000, timeout=10, client_options=infra.kafka_options("ops"))
    dead = [r for r in everything if dict(r.headers).get("jmo-dlq-source") == source]
    assert len(dead) == 1 and dead[0].value == b"this is not an envelope"
    assert dict(dead[0].headers)["jmo-dlq-reason"] == b"INVALID_ENVELOPE"
    log = service.read_log()
    assert "event appended" in log  # the log is there, and it carries no personal data in clear:
    for personal in ("3201010508900002", "Budi", "BUDI", "budi@example.com", "081234567890", "+6281234567890"):
        assert personal not in log
    # one JSON object per line (what a log pipeline ingests), the broker's own records included: no
    # line per consumed message in a format of faststream's own (the runner heads each start "===")
    lines = [line for line in log.splitlines() if line and not line.startswith("=== ")]
    assert [line for line in lines if not line.startswith("{")] == []
    assert all(isinstance(json.loads(line), dict) for line in lines)


