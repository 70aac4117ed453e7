"""The consumers that keep a participant's personal fields sealed as they came (biometric's NIK,
profile-update's new profiles: ``Subscription(..., keeps_sealed=True)``) against the worst a
writer of registration's events topic could send them: a "sealed" value that is anything but one
is parked with ``SEALED_VALUE_INVALID`` by both (a DLQ entry each), a value sealed for someone else
passes (it is kept as it came and never opens: the adapters' tests show that), and both consumers
go on: the next registration is kept by each, /health says ok."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_cli.gateway import Gateway
from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.registration import ParticipantRegistered
from jmo_devstack.topics import read_records
from jmo_runtime.messaging import DLQ_GROUP, DLQ_REASON, DLQ_SOURCE

from .test_two_instances import until_async

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]


def registered(pid: str) -> Envelope:
    event = ParticipantRegistered(
        participant_id=pid, category="BPU", nik="3201014508900009", full_name="UJI SEGEL", email="segel@example.com",
        phone="+6281200000009", otp_channel="email", birth_date=date(1990, 8, 5), gender="F",
    )
    return Envelope.wrap(event, stream_id=f"registration-{pid}", correlation_id=new_id())


async def send_as_is(gateway: Gateway, topic: str, envelope: Envelope) -> tuple[int, int]:
    """Publish ``envelope`` exactly as it is (already sealed, or forged), as registration's relay
    would; where it landed (partition, offset)."""
    return await gateway.send_raw(topic, envelope.to_json(), key=envelope.stream_id.encode(), headers=[(k, v.encode()) for k, v in envelope.kafka_headers().items()])


async def _equal(found: Any, expected: Any) -> bool:
    return await found == expected


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


async def test_a_sealed_value_that_is_not_one_is_parked_by_both_keeping_consumers_and_they_go_on(
    infra: Any, topic_prefix: str, database_prefix: str, service_runner: Any
) -> None:
    services = [service_runner("biometric", {"JMO_BIOMETRIC_WORKERS": "1"}, timeout=120), service_runner("profile-update")]
    topic = topics.events("registration")
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        sealed = await gateway.sealed(registered(new_id()))
        good = sealed.payload["nik"]
        hostile = [
            {"_enc": "A" * 100_000},  # far longer than any personal field
            {**good, "beside": nested(60)},  # something stored beside the sealed value
            {"_enc": 12345},  # not a string
        ]
        sent: set[str] = set()
        for nik in hostile:
            forged = sealed.model_copy(update={"message_id": new_id(), "payload": sealed.payload | {"nik": nik}})
            partition, offset = await send_as_is(gateway, topic, forged)
            sent.add(f"{topic_prefix}{topic}/{partition}/{offset}")
        other = await gateway.sealed(registered(new_id()))
        moved = other.model_copy(update={"message_id": new_id(), "payload": other.payload | {"nik": good}})  # someone else's NIK: kept, never opened
        await send_as_is(gateway, topic, moved)
        after = new_id()
        await gateway.send(registered(after), topic=topic)

    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        biometric = client[f"{database_prefix}jmo_biometric"]["participants"]
        profiles = client[f"{database_prefix}jmo_profile_update"]["participant_profiles"]

        async def both_kept() -> bool:
            return await biometric.find_one({"_id": after}) is not None and await profiles.find_one({"_id": after}) is not None

        assert await until_async(both_kept, 120), "a consumer stopped after the hostile messages"
        assert await biometric.find_one({"_id": sealed.payload["participant_id"]}) is None  # none of the forged ones was kept
        assert await profiles.find_one({"_id": sealed.payload["participant_id"]}) is None
    finally:
        await client.close()

    async def parked() -> list[tuple[str, str, str]]:
        """The DLQ entries of the messages sent here (the topic's DLQ is shared with other tests)."""
        records = await read_records(infra.kafka_bootstrap, topic_prefix + topics.dlq(topic), 10_000, timeout=5, client_options=infra.kafka_options("ops"))
        entries = [{k: v.decode() for k, v in r.headers} for r in records]
        return sorted((h[DLQ_SOURCE], h[DLQ_GROUP], h[DLQ_REASON]) for h in entries if h.get(DLQ_SOURCE) in sent)

    expected = sorted((where, group, "SEALED_VALUE_INVALID") for where in sent for group in ("jmo-biometric", "jmo-profile-update"))
    assert await until_async(lambda: _equal(parked(), expected), 60), f"parked: {await parked()}"
    for service in services:
        assert service.healthy(), f"{service.name} is not healthy after the hostile messages"
