"""A journey survives redelivery of every command and a restart of the service in the middle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_cli.gateway import Gateway, command_envelope
from jmo_contracts import Envelope
from jmo_eventstore import MongoEventStore

from .test_identity_flow import delivered_code
from .test_registration_journey import ENDS, only, payment, person

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]


async def stream_length(infra: Any, database: str, stream: str) -> int:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        return len(await MongoEventStore(client[database]).read_stream(stream))
    finally:
        await client.close()


async def test_every_command_delivered_twice_changes_nothing_the_second_time(service_runner: Any, infra: Any, topic_prefix: str, database_prefix: str, service_keys: dict[str, str]) -> None:
    service_runner("registration")
    service_runner("identity")
    sent: list[Envelope] = []
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:

        async def send(command: Envelope, until: set[str]) -> list[Envelope]:
            sent.append(command)
            await gateway.send(command)
            return await gateway.until(command.correlation_id, until, timeout=60)

        journey = command_envelope("RegisterParticipant", person("BPU", 9))
        issued = only(await send(journey, {"OtpIssued"}), "OtpIssued")
        pid = journey.stream_id.removeprefix("registration-")
        code = await delivered_code(infra, topic_prefix, service_keys, journey.correlation_id, issued.payload["otp_id"])
        await send(command_envelope("SubmitOtp", {"participant_id": pid, "purpose": "REGISTRATION", "code": code}, correlation_id=journey.correlation_id, stream=f"identity-{pid}"), {"RegistrationContactConfirmed"})
        details = {"occupation": "Penjahit", "monthly_income": 1_500_000, "join_jht": False}
        assessed = only(await send(command_envelope("ProvideEmploymentDetails", details, correlation_id=journey.correlation_id, stream=journey.stream_id), ENDS), "ContributionAssessed")
        pay = command_envelope("RecordContributionPayment", payment(assessed, assessed.payload["amount_due"], "MANDIRI-1"), correlation_id=journey.correlation_id, stream=journey.stream_id)
        only(await send(pay, ENDS), "AccountActivated")

        await asyncio.sleep(2)  # let every relay publish what the journey produced
        before = (await stream_length(infra, f"{database_prefix}jmo_registration", journey.stream_id), await stream_length(infra, f"{database_prefix}jmo_identity", f"identity-{pid}"))
        for command in sent:  # the gateway retries everything, same message ids
            await gateway.send(command)
        late = [e async for e in gateway.events(journey.correlation_id, wait=8)]
        after = (await stream_length(infra, f"{database_prefix}jmo_registration", journey.stream_id), await stream_length(infra, f"{database_prefix}jmo_identity", f"identity-{pid}"))
    assert after == before
    assert late == []  # nothing new was published either


async def test_a_restarted_registration_service_continues_the_journey_where_it_was(service_runner: Any, infra: Any, topic_prefix: str, service_keys: dict[str, str]) -> None:
    registration = service_runner("registration")
    service_runner("identity")
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey = command_envelope("RegisterParticipant", person("BPU", 11))
        await gateway.send(journey)
        issued = only(await gateway.until(journey.correlation_id, {"OtpIssued"}, timeout=60), "OtpIssued")
        pid = journey.stream_id.removeprefix("registration-")
        code = await delivered_code(infra, topic_prefix, service_keys, journey.correlation_id, issued.payload["otp_id"])
        registration.kill()  # no graceful shutdown
        await gateway.send(command_envelope("SubmitOtp", {"participant_id": pid, "purpose": "REGISTRATION", "code": code}, correlation_id=journey.correlation_id, stream=f"identity-{pid}"))
        registration.start()  # comes back and consumes what it missed
        await gateway.until(journey.correlation_id, {"RegistrationContactConfirmed"}, timeout=90)
        details = command_envelope("ProvideEmploymentDetails", {"occupation": "Ojek daring", "monthly_income": 3_000_000, "join_jht": True}, correlation_id=journey.correlation_id, stream=journey.stream_id)
        await gateway.send(details)
        assessed = only(await gateway.until(journey.correlation_id, ENDS, timeout=60), "ContributionAssessed")
        pay = command_envelope("RecordContributionPayment", payment(assessed, assessed.payload["amount_due"], "BCA-9"), correlation_id=journey.correlation_id, stream=journey.stream_id)
        await gateway.send(pay)
        assert only(await gateway.until(journey.correlation_id, ENDS, timeout=60), "AccountActivated").payload["category"] == "BPU"
