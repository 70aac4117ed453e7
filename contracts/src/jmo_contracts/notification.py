"""Contracts of the notification service: what was delivered by email / SMS, and what could not be (SPEC §7).

Delivery is idempotent per source message: ``notification_id`` is derived from the source message id
and template, so a redelivered source event never sends twice. Streams are ``notification-<notification_id>``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .common import OtpChannel
from .messages import Event, message

HEX32 = r"^[0-9a-f]{32}$"
EXAMPLE_PARTICIPANT_ID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"


class NotificationFailure(StrEnum):
    """Why a notification could not be delivered."""

    INVALID_RECIPIENT = "INVALID_RECIPIENT"
    PROVIDER_REJECTED = "PROVIDER_REJECTED"  # SMTP 5xx, SMS provider refusal
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"  # retries with backoff exhausted
    CODE_EXPIRED = "CODE_EXPIRED"  # an OTP whose validity ended before it could be sent
    DECRYPTION_FAILED = "DECRYPTION_FAILED"  # OTP ciphertext unreadable (unknown key id, bad tag)
    TEMPLATE_ERROR = "TEMPLATE_ERROR"


@message("NotificationSent")
class NotificationSent(Event):
    """One email or SMS was handed to the provider for one source message."""

    notification_id: str = Field(pattern=HEX32, description="Id derived from source message id and template (idempotency).", examples=["4e5f6a7b8c9d40e1f2a3b4c5d6e7f8a9"])
    participant_id: str | None = Field(default=None, pattern=HEX32, description="Participant notified, when known.", examples=[EXAMPLE_PARTICIPANT_ID])
    channel: OtpChannel = Field(description="email or sms.", examples=["email"])
    recipient_masked: str = Field(description="Recipient masked (never in clear).", examples=["s*********h@example.com"])
    template: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Template used (Bahasa Indonesia).", examples=["otp_registration"])
    source_message_id: str = Field(pattern=HEX32, description="message_id of the event or delivery request that caused it.", examples=["6f1c2a9e0d4b4c1f9a7e3b2d1c0f9e8a"])
    source_type: str = Field(description="Type of that message.", examples=["OtpDeliveryRequested"])
    provider_message_id: str | None = Field(default=None, description="Id the SMTP server / SMS provider gave the message, when any.", examples=["<20261121083001.4e5f6a7b@jmo.local>"])
    attempts: int = Field(ge=1, description="Delivery attempts it took.", examples=[1])


@message("NotificationFailed")
class NotificationFailed(Event):
    """A notification could not be delivered after its retries; the source message also goes to the DLQ."""

    notification_id: str = Field(pattern=HEX32, description="Id derived from source message id and template (idempotency).", examples=["4e5f6a7b8c9d40e1f2a3b4c5d6e7f8a9"])
    participant_id: str | None = Field(default=None, pattern=HEX32, description="Participant concerned, when known.", examples=[EXAMPLE_PARTICIPANT_ID])
    channel: OtpChannel = Field(description="email or sms.", examples=["sms"])
    recipient_masked: str = Field(description="Recipient masked (never in clear).", examples=["+62812****7890"])
    template: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Template that was to be used.", examples=["account_activated"])
    source_message_id: str = Field(pattern=HEX32, description="message_id of the message that caused it.", examples=["6f1c2a9e0d4b4c1f9a7e3b2d1c0f9e8a"])
    source_type: str = Field(description="Type of that message.", examples=["AccountActivated"])
    reason_code: NotificationFailure = Field(description="Machine-readable reason.", examples=["PROVIDER_UNAVAILABLE"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["SMS provider returned HTTP 503 five times"])
    attempts: int = Field(ge=1, description="Delivery attempts made.", examples=[5])
