"""Read models rebuilt from the log. Each is a pure fold from events to documents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jmo_eventstore import RecordedEvent, ValueSealer
from jmo_profile_update.adapters.profiles import COLLECTION as PROFILES_COLLECTION
from jmo_profile_update.adapters.profiles import stored_form as sealed_profile
from jmo_profile_update.domain import profile as profiles

Doc = dict[str, Any]


@dataclass(frozen=True)
class Projection:
    """A read model: the service whose database holds it, its collection, how it folds an event,
    and whose logs it reads (in that order; its own service's log when not given). ``at_rest``
    turns a folded document into its stored form with the owning service's codec (a read model
    holding personal data seals it as the service does); documents are stored as folded without it."""

    name: str
    service: str
    collection: str
    apply: Callable[[dict[str, Doc], RecordedEvent], None]
    description: str
    reads: tuple[str, ...] = ()
    at_rest: Callable[[ValueSealer, Doc], Awaitable[Doc]] | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return self.reads or (self.service,)


def _registrations(docs: dict[str, Doc], event: RecordedEvent) -> None:
    env = event.envelope
    doc = docs.setdefault(env.stream_id, {"_id": env.stream_id, "status": "STARTED", "rejections": 0})
    doc.update(version=event.stream_version, last_event=env.type, updated_at=env.occurred_at.isoformat())
    if env.type == "ParticipantRegistered":
        doc.update(status="REGISTERED", participant_id=env.payload["participant_id"], category=env.payload["category"], registered_at=env.occurred_at.isoformat())
    elif env.type == "CommandRejected":
        doc["rejections"] += 1
        doc["last_rejection"] = env.payload["reason_code"]
    elif env.type in {"AccountActivated", "RegistrationRejected", "RegistrationExpired"}:
        doc["status"] = {"AccountActivated": "ACTIVE", "RegistrationRejected": "REJECTED", "RegistrationExpired": "EXPIRED"}[env.type]


def _participant_profiles(docs: dict[str, Doc], event: RecordedEvent) -> None:
    participant = profiles.participant_of(event.envelope)
    if participant is not None:
        folded = profiles.apply(docs.get(participant), event.envelope)
        if folded is not None:
            docs[participant] = folded


PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in [
        Projection("registrations", "registration", "read_registrations", _registrations, "Status of every registration, for ops (no personal data)."),
        Projection(
            "participant-profiles", "profile-update", PROFILES_COLLECTION, _participant_profiles,
            "Every participant's profile as the profile-update service keeps it live (personal data, sealed).", reads=tuple(profiles.SOURCES),
            at_rest=sealed_profile,
        ),
    ]
}
