"""Dukcapil and the employer registry reached over HTTP (the real adapters, against the registry
server on loopback) going down and coming back: a registration waits instead of failing, then
carries on by itself (SPEC §8)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jmo_cli.gateway import Gateway, command_envelope
from jmo_registries import identities
from jmo_registries.server import RegistryServer

from .test_identity_flow import delivered_code
from .test_registration_journey import only, person

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]


async def test_a_registration_waits_out_both_registries_being_down_and_is_activated(infra: Any, topic_prefix: str, service_keys: dict[str, str], service_runner: Any) -> None:
    enrolled = identities("PU", 12)[7]
    data = person("PU", 30, employer=True) | {"nik": enrolled["nik"], "full_name": enrolled["full_name"]}
    async with RegistryServer() as registries:
        registries.faults.fail_status = 503  # both registries answer 503 until cleared
        service_runner("identity", {"JMO_DUKCAPIL_URL": registries.base_url, "JMO_DUKCAPIL_RETRY_SECONDS": "0.5", "JMO_DUKCAPIL_TIMEOUT_SECONDS": "2", "JMO_DUKCAPIL_BREAKER_COOLDOWN_SECONDS": "2"})
        service_runner("registration", {"JMO_EMPLOYER_REGISTRY_URL": registries.base_url, "JMO_EMPLOYER_RETRY_STEP_SECONDS": "1", "JMO_EMPLOYER_RETRY_SWEEP_SECONDS": "0.5", "JMO_EMPLOYER_REGISTRY_BREAKER_COOLDOWN_SECONDS": "2"})
        async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
            journey = command_envelope("RegisterParticipant", data)
            await gateway.send(journey)
            waiting = await gateway.until(journey.correlation_id, {"NikVerified", "NikRejected", "CommandRejected"}, timeout=8)
            # accepted, and told once that it waits for Dukcapil
            assert sorted(e.type for e in waiting) == ["NikVerificationDeferred", "ParticipantRegistered"], [e.type for e in waiting]
            assert registries.requests["/v1/nik/verify"] >= 1, registries.requests

            registries.faults.clear()  # Dukcapil is back: the check goes through by itself
            events = await gateway.until(journey.correlation_id, {"OtpIssued", "NikRejected"}, timeout=60)
            assert {"NikVerified", "OtpIssued"} <= {e.type for e in events}, [e.type for e in events]
            issued = only(events, "OtpIssued")
            code = await delivered_code(infra, topic_prefix, service_keys, journey.correlation_id, issued.payload["otp_id"])
            pid = journey.stream_id.removeprefix("registration-")
            await gateway.send(command_envelope("SubmitOtp", {"participant_id": pid, "purpose": "REGISTRATION", "code": code}, correlation_id=journey.correlation_id))
            await gateway.until(journey.correlation_id, {"RegistrationContactConfirmed"}, timeout=60)

            registries.faults.fail_status = 503  # now the employer registry is down
            details = {"occupation": "Operator produksi", "employer_name": "PT Contoh", "monthly_income": 5_000_000}
            await gateway.send(command_envelope("ProvideEmploymentDetails", details, correlation_id=journey.correlation_id, stream=journey.stream_id))
            deferred = only(await gateway.until(journey.correlation_id, {"EmployerMembershipCheckDeferred", "AccountActivated", "RegistrationRejected"}, timeout=60), "EmployerMembershipCheckDeferred")
            assert deferred.payload["attempt"] == 1
            await asyncio.sleep(2.5)  # a retry or two fail while it is down: still waiting, not rejected
            registries.faults.clear()
            events = await gateway.until(journey.correlation_id, {"AccountActivated", "RegistrationRejected"}, timeout=60)
    activated = only(events, "AccountActivated")
    assert activated.payload["kpj_number"] == enrolled["kpj_number"]
    assert max(e.payload["attempt"] for e in [deferred, *events] if e.type == "EmployerMembershipCheckDeferred") >= 1


async def test_a_request_dukcapil_refuses_is_parked_the_next_registration_goes_on_and_a_replay_finishes_it(infra: Any, topic_prefix: str, service_runner: Any) -> None:
    """A 4xx is not an outage: waiting cannot help, so the message goes to the DLQ instead of blocking
    its partition; once the cause is fixed, ``jmo dlq replay`` puts it back and the registration carries on."""
    from jmo_contracts import topics
    from jmo_runtime.messaging import DLQ_GROUP, DLQ_REASON

    def jmo(*args: str) -> list[dict[str, Any]]:
        env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "JMO_TOPIC_PREFIX": topic_prefix} | infra.kafka_tool_env()
        done = subprocess.run([str(Path(sys.executable).with_name("jmo")), *args], env=env, capture_output=True, text=True, timeout=120, check=True)
        return [json.loads(line) for line in done.stdout.splitlines()]

    first, second = person("BPU", 31), person("BPU", 32)
    async with RegistryServer() as registries:
        registries.faults.fail_status = 400
        service_runner("identity", {"JMO_DUKCAPIL_URL": registries.base_url, "JMO_HANDLER_ATTEMPTS": "2"})
        service_runner("registration")
        async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
            refused = command_envelope("RegisterParticipant", first)
            await gateway.send(refused)
            parked: list[dict[str, Any]] = []
            for _ in range(30):  # bounded; the DLQ is the session's, so look for this journey's entry
                if parked := [p for p in await asyncio.to_thread(jmo, "dlq", "list", topics.events("registration")) if p["correlation_id"] == refused.correlation_id]:
                    break
                await asyncio.sleep(1)
            assert registries.requests["/v1/nik/verify"] == 1  # asked once: a refusal is not retried
            registries.faults.clear()
            going_on = command_envelope("RegisterParticipant", second)
            await gateway.send(going_on)
            events = await gateway.until(going_on.correlation_id, {"OtpIssued", "NikRejected"}, timeout=60)
            assert "NikVerified" in {e.type for e in events}
            assert not [e for e in await gateway.until(refused.correlation_id, {"NikVerified"}, timeout=1) if e.type.startswith("Nik")]

            [entry] = parked
            assert (entry["reason"], entry["consumer_group"], entry["type"]) == ("REGISTRY_REFUSED", "jmo-identity", "ParticipantRegistered")
            assert first["nik"] not in json.dumps(entry)
            would = await asyncio.to_thread(jmo, "dlq", "replay", topics.events("registration"), "--reason", "REGISTRY_REFUSED", "--dry-run")
            assert entry["offset"] in [w["offset"] for w in would] and not any(w["replayed"] for w in would)
            [replayed] = await asyncio.to_thread(jmo, "dlq", "replay", topics.events("registration"), "--offset", str(entry["offset"]))
            assert (replayed["replayed"], replayed["to"]) == (True, topic_prefix + topics.events("registration"))
            events = await gateway.until(refused.correlation_id, {"OtpIssued", "NikRejected"}, timeout=60)
            assert "NikVerified" in {e.type for e in events}
