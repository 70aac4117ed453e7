"""Registration and identity on the real stack: the NIK checked with Dukcapil, the OTP sealed for
delivery, and its verification with the policy of SPEC §4."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from jmo_cli.gateway import Gateway, command_envelope
from jmo_contracts import Envelope, topics
from jmo_registries import identities
from jmo_runtime.sealing import decode_key, open_code

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
OUTCOMES = {"OtpIssued", "NikRejected", "CommandRejected"}


def citizen(n: int) -> dict[str, Any]:
    person = identities("BPU", 40)[n]
    suffix = person["nik"][-4:]
    return {"category": "BPU", "nik": person["nik"], "full_name": person["full_name"].title(), "email": f"peserta{suffix}@example.com", "phone": f"0812000{suffix}", "otp_channel": "email"}


@pytest.fixture
def stack(service_runner: Any) -> list[Any]:
    return [service_runner("registration"), service_runner("identity", {"JMO_OTP_RESEND_COOLDOWN_SECONDS": "60"})]


async def delivered_code(infra: Any, topic_prefix: str, keys: dict[str, str], correlation_id: str, otp_id: str) -> str:
    """What the notification service will do: find the sealed code and open it with its key."""
    consumer = AIOKafkaConsumer(topic_prefix + topics.OTP_DELIVERY, bootstrap_servers=infra.kafka_bootstrap, group_id=None, auto_offset_reset="earliest", **infra.kafka_options("ops"))
    await consumer.start()
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    request = Envelope.from_json(record.value)
                    if request.correlation_id == correlation_id and request.payload["otp_id"] == otp_id:
                        return open_code(decode_key(keys["JMO_OTP_DELIVERY_KEY"]), otp_id, request.payload["code_ciphertext"])
        raise AssertionError("no OTP delivery request")
    finally:
        await consumer.stop()


async def register(gateway: Gateway, data: dict[str, Any]) -> tuple[Envelope, list[Envelope]]:
    command = command_envelope("RegisterParticipant", data)
    await gateway.send(command)
    return command, await gateway.until(command.correlation_id, OUTCOMES, timeout=60)


async def send(gateway: Gateway, command_type: str, data: dict[str, Any], journey: Envelope, stop: set[str]) -> list[Envelope]:
    pid = journey.stream_id.removeprefix("registration-")
    command = command_envelope(command_type, {"participant_id": pid, **data}, correlation_id=journey.correlation_id, stream=f"identity-{pid}")
    await gateway.send(command)
    return [e for e in await gateway.until(journey.correlation_id, stop, timeout=60) if e.causation_id == command.message_id or e.type in stop]


async def test_a_matching_nik_gets_a_sealed_code_that_verifies_the_contact(infra: Any, topic_prefix: str, service_keys: dict[str, str], stack: list[Any]) -> None:
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey, events = await register(gateway, citizen(0))
        assert {e.type for e in events} >= {"ParticipantRegistered", "NikVerified", "OtpIssued"}
        issued = next(e for e in events if e.type == "OtpIssued").payload
        assert "code" not in issued and issued["destination_masked"] != issued["destination"]
        code = await delivered_code(infra, topic_prefix, service_keys, journey.correlation_id, issued["otp_id"])
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        [refused] = await send(gateway, "SubmitOtp", {"purpose": "REGISTRATION", "code": wrong}, journey, {"OtpRejected", "OtpVerified"})
        assert (refused.type, refused.payload["reason_code"], refused.payload["attempts_left"]) == ("OtpRejected", "WRONG_CODE", 4)
        [verified] = await send(gateway, "SubmitOtp", {"purpose": "REGISTRATION", "code": code}, journey, {"OtpRejected", "OtpVerified"})
        assert verified.type == "OtpVerified"
    for service in stack:  # nothing personal in clear in the logs, and never the code
        for secret in (citizen(0)["nik"], citizen(0)["full_name"].upper(), citizen(0)["email"], code):
            assert not service.mentions(secret)


async def test_dukcapil_refuses_a_name_that_does_not_match_and_a_nik_it_does_not_know(infra: Any, topic_prefix: str, stack: list[Any]) -> None:
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        _, mismatch = await register(gateway, citizen(1) | {"full_name": "Nama Yang Lain"})
        unknown_nik = "3201014508909999"  # structurally valid, not in the registry
        _, unknown = await register(gateway, citizen(2) | {"nik": unknown_nik})
    [rejected] = [e for e in mismatch if e.type == "NikRejected"]
    assert rejected.payload["reason_code"] == "DUKCAPIL_MISMATCH"
    [rejected] = [e for e in unknown if e.type == "NikRejected"]
    assert rejected.payload["reason_code"] == "NOT_FOUND"


async def test_a_resend_too_soon_and_five_wrong_codes_are_refused_and_the_code_dies(infra: Any, topic_prefix: str, service_keys: dict[str, str], stack: list[Any]) -> None:
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey, events = await register(gateway, citizen(3))
        issued = next(e for e in events if e.type == "OtpIssued").payload
        [too_soon] = await send(gateway, "RequestOtp", {"channel": "email", "purpose": "REGISTRATION"}, journey, {"OtpRejected", "OtpIssued"})
        assert (too_soon.type, too_soon.payload["reason_code"]) == ("OtpRejected", "RESEND_TOO_SOON")
        assert too_soon.payload["retry_at"] is not None
        code = await delivered_code(infra, topic_prefix, service_keys, journey.correlation_id, issued["otp_id"])
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        answers = [(await send(gateway, "SubmitOtp", {"purpose": "REGISTRATION", "code": wrong}, journey, {"OtpRejected"}))[0].payload for _ in range(5)]
        assert [a["reason_code"] for a in answers] == ["WRONG_CODE"] * 4 + ["TOO_MANY_ATTEMPTS"]
        [dead] = await send(gateway, "SubmitOtp", {"purpose": "REGISTRATION", "code": code}, journey, {"OtpRejected", "OtpVerified"})
        assert (dead.type, dead.payload["reason_code"]) == ("OtpRejected", "TOO_MANY_ATTEMPTS")


async def test_a_code_submitted_after_it_expired_is_refused(infra: Any, topic_prefix: str, service_keys: dict[str, str], service_runner: Any) -> None:
    service_runner("registration")
    service_runner("identity", {"JMO_OTP_VALIDITY_SECONDS": "3"})
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        journey, events = await register(gateway, citizen(4))
        issued = next(e for e in events if e.type == "OtpIssued").payload
        code = await delivered_code(infra, topic_prefix, service_keys, journey.correlation_id, issued["otp_id"])
        await asyncio.sleep(4)
        [late] = await send(gateway, "SubmitOtp", {"purpose": "REGISTRATION", "code": code}, journey, {"OtpRejected", "OtpVerified"})
    assert (late.type, late.payload["reason_code"]) == ("OtpRejected", "EXPIRED")
