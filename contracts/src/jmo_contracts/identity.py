"""Contracts of the identity service: NIK verification against Dukcapil and OTP (SPEC §3.3, §3.4, §4).

Identity reacts to ``ParticipantRegistered`` (no command is needed to start the NIK check) and to
the ``RequestOtp`` / ``SubmitOtp`` commands. Its streams are ``identity-<participant_id>``.

The plain OTP code never enters the event log: ``OtpIssued`` carries only its keyed hash (HMAC), and
the code itself travels only inside ``OtpDeliveryRequested``, encrypted for the notification service,
on the short-retention topic ``jmo.identity.otp-delivery``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from .common import OtpChannel
from .envelope import STREAM_ID_PATTERN
from .messages import Command, Event, Payload, message, upcaster

HEX32 = r"^[0-9a-f]{32}$"
REASON_CODE = r"^[A-Z][A-Z0-9_]*$"

EXAMPLE_PARTICIPANT_ID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
EXAMPLE_OTP_ID = "9e8d7c6b5a4f4e3d8c2b1a0f9e8d7c6b"
EXAMPLE_SESSION_ID = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"
EXAMPLE_REGISTRATION_STREAM = "registration-8d3c6c1e5f2a4b7d9e0f1a2b3c4d5e6f"


def _participant_id() -> Any:
    return Field(pattern=HEX32, description="Participant reference (from ParticipantRegistered). Not personal data.", examples=[EXAMPLE_PARTICIPANT_ID])


def _registration_stream_id() -> Any:
    return Field(
        pattern=STREAM_ID_PATTERN,
        description="Stream of the registration whose ParticipantRegistered triggered the NIK check, so registration can find it.",
        examples=[EXAMPLE_REGISTRATION_STREAM],
    )


def _otp_id() -> Any:
    return Field(pattern=HEX32, description="Identifier of one issued code.", examples=[EXAMPLE_OTP_ID])


def _session_id() -> Any:
    return Field(
        default=None,
        pattern=HEX32,
        description="Profile-update (pengkinian data) session the code belongs to; set only for purpose CONTACT_CHANGE.",
        examples=[EXAMPLE_SESSION_ID],
    )


# --- NIK verification (Dukcapil) -------------------------------------------------------------


class NikRejectionReason(StrEnum):
    """Why Dukcapil did not confirm the NIK. Dukcapil never says which field differs."""

    DUKCAPIL_MISMATCH = "DUKCAPIL_MISMATCH"  # "TIDAK SESUAI"
    NOT_FOUND = "NOT_FOUND"  # "data tidak ditemukan"


class NikDeferralReason(StrEnum):
    """Why the Dukcapil check could not be made now (it will be retried)."""

    TIMEOUT = "TIMEOUT"
    UNAVAILABLE = "UNAVAILABLE"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"


@message("NikVerified")
class NikVerified(Event):
    """Dukcapil answered "SESUAI": the NIK, name and birth date submitted at registration match its record."""

    participant_id: str = _participant_id()
    registration_stream_id: str = _registration_stream_id()
    dukcapil_reference: str | None = Field(default=None, description="Transaction reference returned by Dukcapil, for audit.", examples=["DKC-20261121-000417"])
    attempts: int = Field(ge=1, description="Number of calls to Dukcapil it took (1 unless earlier calls timed out).", examples=[1])


@message("NikRejected")
class NikRejected(Event):
    """Dukcapil did not confirm the NIK; the registration cannot continue ("proses pendaftaran tidak dapat dilanjutkan")."""

    participant_id: str = _participant_id()
    registration_stream_id: str = _registration_stream_id()
    reason_code: NikRejectionReason = Field(description="DUKCAPIL_MISMATCH (\"TIDAK SESUAI\") or NOT_FOUND (\"data tidak ditemukan\").", examples=["DUKCAPIL_MISMATCH"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["Data tidak sesuai dengan data Dukcapil"])
    dukcapil_reference: str | None = Field(default=None, description="Transaction reference returned by Dukcapil, for audit.", examples=["DKC-20261121-000418"])


@message("NikVerificationDeferred")
class NikVerificationDeferred(Event):
    """Dukcapil could not be asked (timeout, outage, open circuit); the check is retried later and the registration waits."""

    participant_id: str = _participant_id()
    registration_stream_id: str = _registration_stream_id()
    reason_code: NikDeferralReason = Field(description="TIMEOUT, UNAVAILABLE or CIRCUIT_OPEN.", examples=["TIMEOUT"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["Dukcapil did not answer within 5 s"])
    attempt: int = Field(ge=1, description="How many attempts have been made so far.", examples=[1])
    retry_at: AwareDatetime = Field(description="When the next attempt is planned (UTC).", examples=["2026-11-21T08:31:00Z"])


# --- OTP -------------------------------------------------------------------------------------


class OtpPurpose(StrEnum):
    """What a one-time code verifies."""

    REGISTRATION = "REGISTRATION"  # the contact given at registration (SPEC §3.4)
    CONTACT_CHANGE = "CONTACT_CHANGE"  # a new phone / email during pengkinian data (SPEC §5.4)


class OtpRejectionReason(StrEnum):
    """Why an OTP request or submission was refused."""

    WRONG_CODE = "WRONG_CODE"
    EXPIRED = "EXPIRED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"  # the code is dead after the maximum of wrong attempts
    RESEND_TOO_SOON = "RESEND_TOO_SOON"  # within the resend cooldown
    HOURLY_LIMIT = "HOURLY_LIMIT"  # too many codes for this participant in the last hour
    NO_ACTIVE_CODE = "NO_ACTIVE_CODE"  # nothing issued (or already used) for this purpose
    ALREADY_VERIFIED = "ALREADY_VERIFIED"
    UNKNOWN_PARTICIPANT = "UNKNOWN_PARTICIPANT"
    CONTACT_REQUIRED = "CONTACT_REQUIRED"  # CONTACT_CHANGE without the new contact


@message("RequestOtp", personal={"new_contact"})
class RequestOtp(Command):
    """Send (or re-send) a one-time code to the participant (stream ``identity-<participant_id>``)."""

    participant_id: str = _participant_id()
    channel: OtpChannel = Field(description="Where to deliver the code: email or sms.", examples=["email"])
    purpose: OtpPurpose = Field(description="REGISTRATION (contact given at registration) or CONTACT_CHANGE (new contact during pengkinian data).", examples=["REGISTRATION"])
    new_contact: str | None = Field(
        default=None,
        description="For CONTACT_CHANGE: the new email or mobile number (08… / +628…) to verify. Empty for REGISTRATION.",
        examples=["siti.aminah.baru@example.com"],
    )
    profile_update_session_id: str | None = _session_id()


@message("SubmitOtp", personal={"code"})
class SubmitOtp(Command):
    """The participant types the code they received."""

    participant_id: str = _participant_id()
    otp_id: str | None = Field(default=None, pattern=HEX32, description="Code being answered (from OtpIssued); the latest active one of `purpose` when absent.", examples=[EXAMPLE_OTP_ID])
    purpose: OtpPurpose = Field(description="What the code verifies.", examples=["REGISTRATION"])
    code: str = Field(pattern=r"^[0-9]{4,10}$", description="The code as typed (6 digits by default). Personal data; never logged.", examples=["482913"])


class OtpIssuedV1(Event):
    """A one-time code was generated for the participant. Only its keyed hash is recorded.

    Schema version 1, superseded by version 2: the expiry was a duration (``expires_in_seconds``)
    from ``issued_at``. Stored v1 messages are read as v2 through the upcaster.
    """

    # Frozen copy of the v1 model, not registered: it documents v1 (schemas/OtpIssued.v1.json).

    participant_id: str = _participant_id()
    otp_id: str = _otp_id()
    purpose: OtpPurpose = Field(description="What the code verifies.", examples=["REGISTRATION"])
    channel: OtpChannel = Field(description="Where the code is delivered.", examples=["email"])
    destination: str = Field(description="Email or E.164 mobile number the code is sent to.", examples=["siti.aminah@example.com"])
    destination_masked: str = Field(description="Destination masked for display and logs.", examples=["s*********h@example.com"])
    profile_update_session_id: str | None = _session_id()
    issued_at: AwareDatetime = Field(description="When the code was generated (UTC).", examples=["2026-11-21T08:30:00Z"])
    expires_in_seconds: int = Field(ge=1, description="Validity of the code from issued_at, in seconds.", examples=[300])
    code_hmac: str = Field(pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA256 of the code under the key `hmac_key_id`, hex. Never the code.", examples=["3f6b1c0e9a7d4b2c8e5f1a3d6c9b0e2f4a7d1c3e5b8f0a2c4e6d8b1a3c5e7f90"])
    hmac_key_id: str = Field(description="Identifier of the HMAC key (keys rotate).", examples=["otp-hmac-2026-11"])
    max_attempts: int = Field(ge=1, description="Wrong submissions allowed before the code is dead.", examples=[5])


OtpIssuedV1.TYPE = "OtpIssued"
OtpIssuedV1.VERSION = 1
OtpIssuedV1.PERSONAL_FIELDS = frozenset({"destination"})


@message("OtpIssued", version=2, personal={"destination"})
class OtpIssued(Event):
    """A one-time code was generated for the participant. Only its keyed hash is recorded.

    Version 2 replaced ``expires_in_seconds`` (v1) with the absolute ``expires_at``.
    """

    participant_id: str = _participant_id()
    otp_id: str = _otp_id()
    purpose: OtpPurpose = Field(description="What the code verifies.", examples=["REGISTRATION"])
    channel: OtpChannel = Field(description="Where the code is delivered.", examples=["email"])
    destination: str = Field(description="Email or E.164 mobile number the code is sent to.", examples=["siti.aminah@example.com"])
    destination_masked: str = Field(description="Destination masked for display and logs.", examples=["s*********h@example.com"])
    profile_update_session_id: str | None = _session_id()
    issued_at: AwareDatetime = Field(description="When the code was generated (UTC).", examples=["2026-11-21T08:30:00Z"])
    expires_at: AwareDatetime = Field(description="When the code stops being accepted (UTC); 5 minutes after issued_at by default.", examples=["2026-11-21T08:35:00Z"])
    code_hmac: str = Field(pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA256 of the code under the key `hmac_key_id`, hex. Never the code.", examples=["3f6b1c0e9a7d4b2c8e5f1a3d6c9b0e2f4a7d1c3e5b8f0a2c4e6d8b1a3c5e7f90"])
    hmac_key_id: str = Field(description="Identifier of the HMAC key (keys rotate).", examples=["otp-hmac-2026-11"])
    max_attempts: int = Field(ge=1, description="Wrong submissions allowed before the code is dead.", examples=[5])


@upcaster("OtpIssued", from_version=1)
def _otp_issued_v1_to_v2(payload: Payload) -> Payload:
    """v1 ``issued_at`` + ``expires_in_seconds`` → v2 ``expires_at``. Pure: uses only the payload."""
    data = dict(payload)
    seconds = data.pop("expires_in_seconds")
    issued_at = datetime.fromisoformat(str(data["issued_at"]))
    if issued_at.tzinfo is None:
        raise ValueError("OtpIssued v1 issued_at must carry a time zone")
    expires_at = (issued_at + timedelta(seconds=int(seconds))).astimezone(UTC)
    data["expires_at"] = expires_at.isoformat().replace("+00:00", "Z")
    return data


@message("OtpDeliveryRequested", personal={"destination"})
class OtpDeliveryRequested(Event):
    """Deliver this code. Published only on ``jmo.identity.otp-delivery`` (short retention), never appended to a log.

    ``code_ciphertext`` is base64 of ``nonce (12 bytes) || ciphertext || tag (16 bytes)`` of the code under
    AES-256-GCM with the notification service's key ``key_id`` and ``otp_id`` (ASCII) as associated data.
    """

    participant_id: str = _participant_id()
    otp_id: str = _otp_id()
    purpose: OtpPurpose = Field(description="What the code verifies; chooses the message template.", examples=["REGISTRATION"])
    channel: OtpChannel = Field(description="Where to deliver the code.", examples=["email"])
    destination: str = Field(description="Email or E.164 mobile number to deliver to.", examples=["siti.aminah@example.com"])
    destination_masked: str = Field(description="Destination masked for logs.", examples=["s*********h@example.com"])
    algorithm: Literal["AES-256-GCM"] = Field(description="Encryption of code_ciphertext.", examples=["AES-256-GCM"])
    key_id: str = Field(description="Identifier of the notification service's key the code is encrypted under.", examples=["notif-otp-2026-11"])
    code_ciphertext: str = Field(pattern=r"^[A-Za-z0-9+/]+={0,2}$", description="Base64 (standard alphabet) of nonce || ciphertext || tag.", examples=["q83vEjRWeJASNFZ4kKvN7xI0VniQq83vEjRWeJASNFZ4kA=="])
    expires_at: AwareDatetime = Field(description="After this instant the code is useless: do not deliver it.", examples=["2026-11-21T08:35:00Z"])


@message("OtpVerified", personal={"destination"})
class OtpVerified(Event):
    """The participant submitted the right code in time: the contact is theirs."""

    participant_id: str = _participant_id()
    otp_id: str = _otp_id()
    purpose: OtpPurpose = Field(description="What was verified.", examples=["REGISTRATION"])
    channel: OtpChannel = Field(description="Channel of the verified contact.", examples=["email"])
    destination: str = Field(description="The verified email or E.164 mobile number.", examples=["siti.aminah@example.com"])
    profile_update_session_id: str | None = _session_id()
    attempts: int = Field(ge=1, description="Submissions it took, including this one.", examples=[1])


@message("OtpRejected")
class OtpRejected(Event):
    """An OTP request or submission was refused (wrong or expired code, limits)."""

    participant_id: str = _participant_id()
    otp_id: str | None = Field(default=None, pattern=HEX32, description="Code concerned, when there is one.", examples=[EXAMPLE_OTP_ID])
    purpose: OtpPurpose = Field(description="What the code was for.", examples=["REGISTRATION"])
    command_id: str = Field(pattern=HEX32, description="message_id of the refused RequestOtp / SubmitOtp.", examples=["6f1c2a9e0d4b4c1f9a7e3b2d1c0f9e8a"])
    reason_code: OtpRejectionReason = Field(description="Machine-readable reason.", examples=["WRONG_CODE"])
    reason: str = Field(description="Human-readable explanation (no personal data, never the code).", examples=["Kode OTP salah, sisa 4 percobaan"])
    attempts_left: int | None = Field(default=None, ge=0, description="Submissions still allowed for this code (WRONG_CODE).", examples=[4])
    retry_at: AwareDatetime | None = Field(default=None, description="Earliest time a new code may be requested (RESEND_TOO_SOON, HOURLY_LIMIT).", examples=["2026-11-21T08:31:00Z"])

#: Frozen copies of earlier schema versions, exported as ``<Type>.v<n>.json`` next to the current one.
LEGACY_MODELS: tuple[type[Event], ...] = (OtpIssuedV1,)
