"""The identity service wired in memory (TestKafkaBroker, in-memory store): NIK check and first OTP
for registrations handled side by side — each code is delivered, sealed, and is the one logged."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import OtpPurpose, RequestOtp
from jmo_contracts.profile_update import ContactDataSubmitted, ProfileUpdateCancelled
from jmo_contracts.registration import ParticipantRegistered
from jmo_eventstore import AppendResult, InMemoryEventStore
from jmo_identity.adapters.crypto import codes_match
from jmo_identity.entrypoint.app import build
from jmo_identity.settings import IdentitySettings
from jmo_registries import identities
from jmo_runtime.relay import InMemoryCheckpoints
from jmo_runtime.sealing import open_code
from jmo_runtime.testing import running_in_memory

pytestmark = pytest.mark.component


class SlowAppends(InMemoryEventStore):
    """Appends that take a while, each its own time, so handlers of different messages interleave
    as they do on a real store: the first finishes while the later ones are still appending."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self.delays = delays

    async def append(self, stream_id: str, expected_version: int, events: Sequence[Envelope], *, cause_id: str, cause_digest: str | None = None, beside: Any = None) -> AppendResult:
        await asyncio.sleep(self.delays.pop(0) if self.delays else 0)
        return await super().append(stream_id, expected_version, events, cause_id=cause_id, cause_digest=cause_digest, beside=beside)


def registered(citizen: dict[str, Any]) -> Envelope:
    pid = new_id()
    event = ParticipantRegistered(
        participant_id=pid, category=Category.BPU, nik=citizen["nik"], full_name=citizen["full_name"], email=f"p{pid[:8]}@example.com",
        phone="+6281234567890", otp_channel=OtpChannel.EMAIL, birth_date=date.fromisoformat(citizen["birth_date"]), gender="M",
    )
    return Envelope.wrap(event, stream_id=f"registration-{pid}", correlation_id=new_id())


async def test_registrations_handled_side_by_side_each_get_their_own_code_delivered() -> None:
    hmac_key, delivery_key = secrets.token_bytes(32), secrets.token_bytes(32)
    settings = IdentitySettings(
        topic_prefix="", database_prefix="", otp_hmac_key=base64.b64encode(hmac_key).decode(), otp_delivery_key=base64.b64encode(delivery_key).decode(),
    )
    store = SlowAppends([0.0, 0.2, 0.4])
    service = build(settings, store=store, checkpoints=InMemoryCheckpoints())
    async with running_in_memory(service, topics.OTP_DELIVERY) as deliveries:
        arrivals = [registered(c) for c in identities("BPU", 3)]
        # before: one dict of plain codes per process, emptied by whichever handler finished first
        await asyncio.gather(*(service.broker.publish(e.to_json(), topic=topics.events("registration")) for e in arrivals))
        while await service.relay_once():
            pass

    assert sorted(d.payload["participant_id"] for d in deliveries) == sorted(e.payload["participant_id"] for e in arrivals)
    for delivery in deliveries:
        pid, otp_id = delivery.payload["participant_id"], delivery.payload["otp_id"]
        code = open_code(delivery_key, otp_id, delivery.payload["code_ciphertext"])
        [issued] = [r.envelope for r in await store.read_stream(f"identity-{pid}") if r.envelope.type == "OtpIssued"]
        assert issued.payload["otp_id"] == otp_id and codes_match(hmac_key, pid, otp_id, code, issued.payload["code_hmac"])


async def test_a_contact_change_code_goes_only_to_the_contact_a_live_session_submitted() -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = IdentitySettings(topic_prefix="", database_prefix="", otp_hmac_key=key, otp_delivery_key=key, contact_change_wait_seconds=0, otp_resend_cooldown_seconds=0)
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints())
    async with running_in_memory(service, topics.events("identity")) as events:
        arrival = registered(identities("BPU", 1)[0])
        pid, sid = arrival.payload["participant_id"], new_id()
        await service.broker.publish(arrival.to_json(), topic=topics.events("registration"))

        async def request(number: str, session: str = sid) -> str:
            command = RequestOtp(participant_id=pid, channel=OtpChannel.SMS, purpose=OtpPurpose.CONTACT_CHANGE, new_contact=number, profile_update_session_id=session)
            envelope = Envelope.wrap(command, stream_id=f"identity-{pid}", correlation_id=new_id())
            await service.broker.publish(envelope.to_json(), topic=topics.commands("identity"))
            while await service.relay_once():
                pass
            [answer] = [e for e in events if e.causation_id == envelope.message_id]
            return answer.payload.get("reason_code") or answer.type

        assert await request("081388800022") == "NO_LIVE_SESSION"  # no session submitted it
        submitted = ContactDataSubmitted(
            participant_id=pid, session_id=sid, phone="+6281388800022", email="siti@example.com", bank_name="BNI", bank_account_number="0123456789",
            npwp_missing_warning=True, verification_required=[OtpChannel.SMS],
        )
        await service.broker.publish(Envelope.wrap(submitted, stream_id=f"profile-update-{sid}", correlation_id=new_id()).to_json(), topic=topics.events("profile-update"))
        assert await request("0813-8880-0022") == "OtpIssued"  # the submitted contact, as typed by the participant
        assert await request("081299999999") == "NO_LIVE_SESSION"  # any other destination
        assert await request("081388800022", session=new_id()) == "NO_LIVE_SESSION"  # another session
        ended = ProfileUpdateCancelled(participant_id=pid, session_id=sid, reason_code="PARTICIPATION_DATA_DISPUTED", reason="x")
        await service.broker.publish(Envelope.wrap(ended, stream_id=f"profile-update-{sid}", correlation_id=new_id()).to_json(), topic=topics.events("profile-update"))
        assert await request("081388800022") == "NO_LIVE_SESSION"  # the session is over


async def test_a_crash_between_logging_a_code_and_publishing_it_still_delivers_it_on_redelivery() -> None:
    hmac_key, delivery_key = secrets.token_bytes(32), secrets.token_bytes(32)
    settings = IdentitySettings(topic_prefix="", database_prefix="", otp_hmac_key=base64.b64encode(hmac_key).decode(), otp_delivery_key=base64.b64encode(delivery_key).decode())
    store = InMemoryEventStore()
    service = build(settings, store=store, checkpoints=InMemoryCheckpoints())
    publish, crashed = service.publish, []

    async def dies_once(topic: str, envelope: Envelope) -> None:
        if topic == topics.OTP_DELIVERY and not crashed:
            crashed.append(envelope)
            raise ConnectionResetError("the process died after logging OtpIssued")
        await publish(topic, envelope)

    service.publish = dies_once  # type: ignore[method-assign]
    async with running_in_memory(service, topics.OTP_DELIVERY) as deliveries:
        arrival = registered(identities("BPU", 1)[0])
        with pytest.raises(ConnectionResetError):
            await service.broker.publish(arrival.to_json(), topic=topics.events("registration"))
        assert deliveries == []
        await service.broker.publish(arrival.to_json(), topic=topics.events("registration"))  # Kafka delivers it again
    pid = arrival.payload["participant_id"]
    [issued] = [r.envelope for r in await store.read_stream(f"identity-{pid}") if r.envelope.type == "OtpIssued"]
    [delivery] = deliveries
    code = open_code(delivery_key, delivery.payload["otp_id"], delivery.payload["code_ciphertext"])
    assert delivery.payload["otp_id"] == issued.payload["otp_id"] and codes_match(hmac_key, pid, issued.payload["otp_id"], code, issued.payload["code_hmac"])


async def test_a_delivery_request_published_again_after_a_crash_carries_the_same_message_id() -> None:
    """A crash after publishing the delivery request but before dropping the sealed copy: the
    redelivered message publishes it again, under the same message id, so the notification
    service (which derives its delivery claim from that id) sends the code once."""
    settings = IdentitySettings(topic_prefix="", database_prefix="", otp_hmac_key=base64.b64encode(secrets.token_bytes(32)).decode(), otp_delivery_key=base64.b64encode(secrets.token_bytes(32)).decode())
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints())
    publish, crashed = service.publish, []

    async def dies_once_after_publishing(topic: str, envelope: Envelope) -> None:
        await publish(topic, envelope)
        if topic == topics.OTP_DELIVERY and not crashed:
            crashed.append(envelope)
            raise ConnectionResetError("the process died before dropping the sealed copy")

    service.publish = dies_once_after_publishing  # type: ignore[method-assign]
    async with running_in_memory(service, topics.OTP_DELIVERY) as deliveries:
        arrival = registered(identities("BPU", 1)[0])
        with pytest.raises(ConnectionResetError):
            await service.broker.publish(arrival.to_json(), topic=topics.events("registration"))
        await service.broker.publish(arrival.to_json(), topic=topics.events("registration"))  # Kafka delivers it again
    first, again = deliveries
    assert first.message_id == again.message_id and first.payload == again.payload
