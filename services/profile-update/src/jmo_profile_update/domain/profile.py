"""The participant profile: a read model folded from the event log (SPEC §5, last line). Pure.

One document per participant (``_id`` = participant id), from registration's ``ParticipantRegistered``
(identity and contact data), ``AccountActivated`` (KPJ number, ACTIVE), ``RegistrationRejected`` /
``RegistrationExpired``, and profile-update's ``ProfileUpdated`` (the changed fields). The same
function serves the live model (fed from Kafka) and ``jmo audit rebuild participant-profiles``
(fed from the stores), so both give the same documents.

Verification of contacts is part of the log already folded here: an account is only activated
after identity's OtpVerified (registration records it as RegistrationContactConfirmed), and a
session only confirms a changed contact after identity's OtpVerified (ContactChangeVerified).

``sessions`` lists the pengkinian-data sessions whose ``ProfileUpdated`` was folded, in order: how
``jmo audit state`` finds a participant's session streams by key, without scanning the log.

Applying is idempotent: a document lists the message ids it has folded (``applied``, sorted), and an
event already listed changes nothing — Kafka delivers at least once.

Every field but those in :data:`NOT_PERSONAL` is personal data (SPEC §9): the adapter keeps those
sealed at rest. A value the log could no longer decrypt (its participant was erased) reaches the
fold as a placeholder string and is folded like any other value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jmo_contracts import Envelope

Profile = dict[str, Any]

#: Event types this read model folds, by the service whose log holds them (rebuild order).
SOURCES: dict[str, frozenset[str]] = {
    "registration": frozenset({"ParticipantRegistered", "AccountActivated", "RegistrationRejected", "RegistrationExpired"}),
    "profile-update": frozenset({"ProfileUpdated"}),
}
FOLDED = frozenset().union(*SOURCES.values())
#: Events that begin a participant's profile: registration logs ``ParticipantRegistered`` first in
#: the participant's stream, and its later events follow it on the same partition; a session (so a
#: ``ProfileUpdated``) only starts for a participant whose profile exists. So when one of these
#: arrives, usually no profile is stored yet and it folds into none (``apply(None, event)``).
STARTS = frozenset({"ParticipantRegistered"})
STATUS_AFTER = {"RegistrationRejected": "REJECTED", "RegistrationExpired": "EXPIRED"}
#: The fields of a profile that are not personal data: references, status and bookkeeping. A field
#: the fold gains later is personal until it is listed here.
NOT_PERSONAL = frozenset(
    {"_id", "participant_id", "category", "status", "notification_channel", "registered_at", "activated_at", "updated_at",
     "profile_version", "last_session_id", "sessions", "last_changed_fields", "applied"}
)


def participant_of(envelope: Envelope) -> str | None:
    """The participant an event is about, when it is one this read model folds."""
    if envelope.type not in FOLDED:
        return None
    participant = envelope.payload.get("participant_id")
    return participant if isinstance(participant, str) else None


def apply(profile: Mapping[str, Any] | None, envelope: Envelope) -> Profile | None:
    """``profile`` after ``envelope`` (a new dict; the argument is not changed)."""
    if envelope.type not in FOLDED:
        return dict(profile) if profile is not None else None
    if profile is not None and envelope.message_id in profile.get("applied", ()):
        return dict(profile)
    p = envelope.payload
    doc: Profile = dict(profile) if profile is not None else {}
    if envelope.type == "ParticipantRegistered":
        doc.update(
            _id=p["participant_id"], participant_id=p["participant_id"], category=p["category"], nik=p["nik"], full_name=p["full_name"],
            birth_date=p["birth_date"], gender=p["gender"], email=p["email"], phone=p["phone"], notification_channel=p["otp_channel"],
            registered_at=envelope.occurred_at.isoformat(), profile_version=0,
        )
        doc.setdefault("status", "REGISTERED")
    elif envelope.type == "AccountActivated":
        doc.update(_id=p["participant_id"], participant_id=p["participant_id"], status="ACTIVE", kpj_number=p["kpj_number"], activated_at=envelope.occurred_at.isoformat())
        doc.update(notification_channel=p["notification_channel"])
    elif envelope.type in STATUS_AFTER:
        doc.update(_id=p["participant_id"], participant_id=p["participant_id"], status=STATUS_AFTER[envelope.type])
    elif envelope.type == "ProfileUpdated":
        doc.update(_id=p["participant_id"], participant_id=p["participant_id"])
        new_values = p.get("new_values") or {}
        for name in p["changed_fields"]:  # an erased log holds one placeholder for all new values
            doc[name] = new_values.get(name) if isinstance(new_values, Mapping) else new_values
        doc.update(
            profile_version=int(doc.get("profile_version", 0)) + 1, last_session_id=p["session_id"], updated_at=envelope.occurred_at.isoformat(),
            last_changed_fields=list(p["changed_fields"]), sessions=[*doc.get("sessions", ()), p["session_id"]],
        )
    doc["applied"] = sorted({*doc.get("applied", ()), envelope.message_id})
    return doc
