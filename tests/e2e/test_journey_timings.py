"""How long the two journeys take on the embedded stack, step by step — a measurement, not a test.

Opt in with ``JMO_MEASURE_JOURNEYS=<count>`` (at most 5: the synthetic citizens whose KTP photo has a
second photo of the same person to use as the selfie)::

    JMO_MEASURE_JOURNEYS=5 .venv/bin/pytest tests/e2e/test_journey_timings.py -s

Each step is timed from the command being sent to its outcome reaching the gateway (the client acts
at once: no thinking time). The OTP is read from the sink's inbox, the selfie is matched by the
biometric service, the pengkinian notice is awaited in the inbox. Nothing is asserted about times.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
from collections import defaultdict
from typing import Any

import pytest

from jmo_cli.gateway import Gateway, command_envelope, upload_selfie
from jmo_contracts import new_id
from jmo_contracts.biometric import BLOB_DATABASE

from .test_biometric_flow import FACES
from .test_profile_update_journey import ADDITIONAL, POPULATION, _gender, profile_active, with_ktp_photo

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
PAIRS = [("kit_harington1.jpeg", "kit_harington2.jpeg"), ("obama.jpg", "obama2.jpg"), ("biden.jpg", "biden2.jpg"), ("rose_leslie1.jpg", "rose_leslie2.jpg"), ("alex-lacamoire.png", "alex_lacamoire2.jpg")]
CODE = re.compile(r"\b(\d{6})\b")


@pytest.mark.skipif(not os.environ.get("JMO_MEASURE_JOURNEYS"), reason="a measurement, not a test: set JMO_MEASURE_JOURNEYS=<count, at most 5>")
async def test_measure_registration_and_pengkinian_data_step_by_step(infra: Any, topic_prefix: str, database_prefix: str, service_runner: Any, sinks: Any) -> None:
    count = min(int(os.environ["JMO_MEASURE_JOURNEYS"]), len(PAIRS))
    for name in ("registration", "identity", "biometric", "profile-update"):
        service_runner(name)
    service_runner("notification", sinks.env)
    timings: dict[str, list[float]] = defaultdict(list)

    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:

        async def timed(label: str, command: Any, outcome: str) -> Any:
            started = time.perf_counter()
            await gateway.send(command)
            events = await gateway.until(command.correlation_id, {outcome, "CommandRejected"}, timeout=120)
            assert events and events[-1].type == outcome, (label, [e.type for e in events], events[-1].payload if events else None)
            timings[label].append(time.perf_counter() - started)
            return events[-1]

        async def in_inbox(to: str, pattern: re.Pattern[str], since: int) -> re.Match[str]:
            for _ in range(1200):
                for m in sinks.messages(to=to)[since:]:
                    if found := pattern.search(f"{m.get('subject') or ''}\n{m['body'] or ''}"):
                        return found
                await asyncio.sleep(0.05)
            raise AssertionError(f"nothing for {to} in the inbox")

        for n, (ktp, selfie) in enumerate(PAIRS[:count]):
            data = with_ktp_photo(ktp, 60 + n) | {"otp_channel": "email", "email": f"waktu{n}@example.com"}
            # --- registration -------------------------------------------------------------------
            journey = command_envelope("RegisterParticipant", data)
            pid = journey.stream_id.removeprefix("registration-")
            begun = time.perf_counter()
            await timed("1 RegisterParticipant -> OtpIssued", journey, "OtpIssued")
            started = time.perf_counter()
            code = (await in_inbox(data["email"], CODE, 0)).group(1)
            timings["1b OtpIssued seen -> code in the inbox"].append(time.perf_counter() - started)
            await timed("2 SubmitOtp -> RegistrationContactConfirmed", command_envelope("SubmitOtp", {"participant_id": pid, "purpose": "REGISTRATION", "code": code}, correlation_id=journey.correlation_id), "RegistrationContactConfirmed")
            details = {"occupation": "Penjahit", "monthly_income": 2_000_000, "join_jht": False}
            assessed = await timed("3 ProvideEmploymentDetails -> ContributionAssessed", command_envelope("ProvideEmploymentDetails", details, correlation_id=journey.correlation_id, stream=journey.stream_id), "ContributionAssessed")
            pay = {"payment_reference": assessed.payload["payment_reference"], "amount": assessed.payload["amount_due"], "paid_at": "2026-11-21T09:00:00Z", "channel": "VIRTUAL_ACCOUNT", "provider": "BNI", "provider_transaction_id": f"T-{new_id()[:8]}"}
            await timed("4 RecordContributionPayment -> AccountActivated", command_envelope("RecordContributionPayment", pay, correlation_id=journey.correlation_id, stream=journey.stream_id), "AccountActivated")
            timings["= RegisterParticipant -> AccountActivated"].append(time.perf_counter() - begun)
            await profile_active(infra, database_prefix, pid)

            # --- pengkinian data ----------------------------------------------------------------
            sid, corr = new_id(), new_id()

            def cmd(kind: str, **payload: Any) -> Any:
                return command_envelope(kind, {"participant_id": pid, "session_id": sid, **payload}, correlation_id=corr)

            begun = time.perf_counter()
            await timed("P1 StartProfileUpdate -> ProfileUpdateStarted", cmd("StartProfileUpdate"), "ProfileUpdateStarted")
            await timed("P2 ConfirmParticipationData -> ParticipationDataConfirmed", cmd("ConfirmParticipationData", confirmed=True), "ParticipationDataConfirmed")
            started = time.perf_counter()
            claim = await upload_selfie(infra.mongodb_uri, f"{database_prefix}{BLOB_DATABASE}", (FACES / selfie).read_bytes())
            timings["P3a selfie upload to GridFS"].append(time.perf_counter() - started)
            await timed("P3b SubmitSelfie -> SelfieVerificationRecorded", cmd("SubmitSelfie", **claim), "SelfieVerificationRecorded")
            contact = {"phone": data["phone"], "email": data["email"], "npwp": "092542943407000", "bank_name": "BNI", "bank_account_number": "0123456789"}
            await timed("P4 SubmitContactData -> ContactDataSubmitted", cmd("SubmitContactData", **contact), "ContactDataSubmitted")
            await timed("P5 SubmitPopulationData -> PopulationDataSubmitted", cmd("SubmitPopulationData", gender=_gender(data["nik"]), **POPULATION), "PopulationDataSubmitted")
            await timed("P6 SubmitAdditionalData -> AdditionalDataSubmitted", cmd("SubmitAdditionalData", **ADDITIONAL), "AdditionalDataSubmitted")
            before = len(sinks.messages(to=data["email"]))
            await timed("P7 ConfirmProfileUpdate -> ProfileUpdated", cmd("ConfirmProfileUpdate", terms_accepted=True), "ProfileUpdated")
            timings["= StartProfileUpdate -> ProfileUpdated"].append(time.perf_counter() - begun)
            started = time.perf_counter()
            await in_inbox(data["email"], re.compile("Pengkinian data berhasil", re.IGNORECASE), before)
            timings["P8 ProfileUpdated seen -> notice in the inbox"].append(time.perf_counter() - started)

    print(f"\njourney timings over {count} participants (seconds: median / max)")
    for label in sorted(timings):
        values = timings[label]
        print(f"  {label:<60} {statistics.median(values):7.3f} / {max(values):7.3f}")
