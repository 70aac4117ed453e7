"""Messages as the notification service receives them, built from the contracts."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from jmo_contracts import Envelope, new_id
from jmo_contracts.identity import OtpDeliveryRequested
from jmo_contracts.profile_update import ProfileUpdated
from jmo_contracts.registration import AccountActivated, ParticipantRegistered, RegistrationRejected
from jmo_runtime.sealing import seal_code

KEY = secrets.token_bytes(32)
KEY_ID = "otp-delivery-1"
PARTICIPANT = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
EMAIL = "siti.aminah@example.com"
PHONE = "+6281234567890"


def otp_request(code: str = "048213", *, channel: str = "email", purpose: str = "REGISTRATION", expires_in: float = 300,
                now: datetime | None = None, key: bytes = KEY, key_id: str = KEY_ID, destination: str | None = None) -> Envelope:
    otp_id = new_id()
    sealed, key_id = seal_code(key, key_id, otp_id, code)
    request = OtpDeliveryRequested(
        participant_id=PARTICIPANT, otp_id=otp_id, purpose=purpose, channel=channel,
        destination=destination or (EMAIL if channel == "email" else PHONE), destination_masked="si***@example.com", algorithm="AES-256-GCM",
        key_id=key_id, code_ciphertext=sealed, expires_at=(now or datetime.now(UTC)) + timedelta(seconds=expires_in),
    )
    return Envelope.wrap(request, stream_id=f"identity-{PARTICIPANT}", correlation_id=new_id())


def registered(channel: str = "email") -> Envelope:
    event = ParticipantRegistered(
        participant_id=PARTICIPANT, category="BPU", nik="3201014508900001", full_name="SITI AMINAH", email=EMAIL, phone=PHONE,
        otp_channel=channel, birth_date="1990-08-05", gender="F",
    )
    return Envelope.wrap(event, stream_id="registration-8d3c6c1e5f2a4b7d9e0f1a2b3c4d5e6f", correlation_id=new_id())


def rejected() -> Envelope:
    event = RegistrationRejected(participant_id=PARTICIPANT, reason_code="NIK_MISMATCH", reason="Data tidak sesuai dengan data Dukcapil")
    return Envelope.wrap(event, stream_id="registration-8d3c6c1e5f2a4b7d9e0f1a2b3c4d5e6f", correlation_id=new_id())


def activated(channel: str = "sms") -> Envelope:
    event = AccountActivated(
        participant_id=PARTICIPANT, category="BPU", kpj_number="26112100042", digital_card_id=new_id(), programs=["JKK", "JKM"],
        full_name="SITI AMINAH", email=EMAIL, phone=PHONE, notification_channel=channel,
    )
    return Envelope.wrap(event, stream_id="registration-8d3c6c1e5f2a4b7d9e0f1a2b3c4d5e6f", correlation_id=new_id())


def profile_updated() -> Envelope:
    event = ProfileUpdated(
        participant_id=PARTICIPANT, session_id=new_id(), changed_fields=["email"], new_values={"email": "siti.baru@example.com"},
        contact_email="siti.baru@example.com", contact_phone=PHONE, notification_channel="email",
    )
    return Envelope.wrap(event, stream_id=f"profile-update-{PARTICIPANT}", correlation_id=new_id())
