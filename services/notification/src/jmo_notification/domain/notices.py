"""Which notice a message calls for, to whom, and under which id (pure: no I/O, no clock).

A notice's ``notification_id`` is derived from the source message id and the template, so every
redelivery of the same message, in any instance, names the same notification: the claim in the
store, the event stream ``notification-<id>``, the SMTP ``Message-ID`` and the SMS
``Idempotency-Key`` all carry it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jmo_contracts import Message
from jmo_contracts.identity import OtpDeliveryRequested, OtpPurpose
from jmo_contracts.profile_update import ProfileUpdated
from jmo_contracts.registration import AccountActivated, ParticipantRegistered, RegistrationRejected

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def notification_id(source_message_id: str, template: str) -> str:
    """32 hex digits, the same for the same source message and template wherever it is computed."""
    return hashlib.sha256(f"jmo-notification-v1\x00{source_message_id}\x00{template}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Contact:
    """Where a participant is reached: what the directory keeps per participant."""

    participant_id: str
    email: str | None
    phone: str | None
    channel: str  # "email" or "sms": the channel the participant chose

    def address(self, channel: str) -> str | None:
        return self.email if channel == "email" else self.phone


@dataclass(frozen=True)
class SealedOtp:
    """An OTP code as it travels: opened only at the moment of sending."""

    otp_id: str
    key_id: str
    ciphertext: str
    expires_at: datetime


@dataclass(frozen=True)
class Notice:
    """One message to send. ``recipient`` is None when it must come from the contact directory."""

    notification_id: str
    template: str
    participant_id: str
    channel: str | None  # None: the channel the directory says the participant chose
    recipient: str | None
    context: dict[str, Any] = field(default_factory=dict)
    otp: SealedOtp | None = None


#: The messages :func:`plan` and :func:`contact_from` act on; on the topics it follows the service
#: passes every other type over unread.
NOTIFYING = (OtpDeliveryRequested, ParticipantRegistered, RegistrationRejected, AccountActivated, ProfileUpdated)


def plan(message: Message, source_message_id: str) -> list[Notice]:
    """The notices ``message`` calls for (none for messages that concern no participant directly)."""

    def notice(template: str, participant_id: str, channel: str | None, recipient: str | None, **context: Any) -> Notice:
        return Notice(notification_id(source_message_id, template), template, participant_id, channel, recipient, context)

    if isinstance(message, OtpDeliveryRequested):
        template = "otp_contact_change" if message.purpose == OtpPurpose.CONTACT_CHANGE else "otp_registration"
        sealed = SealedOtp(message.otp_id, message.key_id, message.code_ciphertext, message.expires_at)
        n = notice(template, message.participant_id, str(message.channel), message.destination)
        return [Notice(n.notification_id, n.template, n.participant_id, n.channel, n.recipient, n.context, sealed)]
    if isinstance(message, ParticipantRegistered):
        channel = str(message.otp_channel)
        return [notice("registration_received", message.participant_id, channel, message.email if channel == "email" else message.phone)]
    if isinstance(message, RegistrationRejected):
        return [notice("registration_rejected", message.participant_id, None, None, reason=message.reason, reason_code=str(message.reason_code))]
    if isinstance(message, AccountActivated):
        channel = str(message.notification_channel)
        return [
            notice(
                "account_activated", message.participant_id, channel, message.email if channel == "email" else message.phone,
                full_name=message.full_name, kpj_number=message.kpj_number, programs=[str(p) for p in message.programs],
            )
        ]
    if isinstance(message, ProfileUpdated):
        channel = str(message.notification_channel)
        return [notice("profile_updated", message.participant_id, channel, message.contact_email if channel == "email" else message.contact_phone, changed_fields=list(message.changed_fields))]
    return []


def contact_from(message: Message) -> Contact | None:
    """The contact details ``message`` tells the directory about, if any."""
    if isinstance(message, ParticipantRegistered):
        return Contact(message.participant_id, message.email, message.phone, str(message.otp_channel))
    if isinstance(message, AccountActivated):
        return Contact(message.participant_id, message.email, message.phone, str(message.notification_channel))
    if isinstance(message, ProfileUpdated):
        return Contact(message.participant_id, message.contact_email, message.contact_phone, str(message.notification_channel))
    return None


def valid_recipient(channel: str, recipient: str) -> bool:
    """An email address for email, an E.164 number for SMS."""
    return bool(_EMAIL.match(recipient)) if channel == "email" else bool(_E164.match(recipient))
