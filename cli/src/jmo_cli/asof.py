"""A participant's state as it was at an instant: their streams read by key and folded with the
services' own deciders (``jmo audit state <participant> --at <instant>``).

Which streams: ``registration-<id>`` and ``identity-<id>`` (named after the participant), the
pengkinian-data sessions ``profile-update-<session>`` that the participant profile lists as folded
(``sessions``; ``last_session_id`` for a profile written before that list existed) or that identity
issued a contact-change code for, and each session's selfie check ``biometric-<session>``. Every read
is ``read_stream`` (primary-key look-ups): the work does not grow with the size of the logs.

Which events: a stream is cut at the instant by the events' ``occurred_at`` — the clock of the
decision that produced them (the command handler stamps every event of one decision with the same
``now``) — and always as a *prefix* of whole commits: the first commit holding an event after the
instant ends the stream. So every state shown is one the service itself held after some decision,
never a mix of an older and a newer decision. The commit's ``recorded_at`` (the store's clock, a few
milliseconds later) is not part of the store interface (:class:`~jmo_eventstore.RecordedEvent`), and
a fact is true from the moment it was decided; the difference is the time of one insert.

The participant profile is folded with ``jmo_profile_update.domain.profile.apply`` (the function of
the live read model) over the registration events and the sessions' ``ProfileUpdated``, in the
order they occurred.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from jmo_contracts import Message, UnknownMessageType
from jmo_eventstore import EventStore, RecordedEvent
from jmo_profile_update.adapters.profiles import COLLECTION as PROFILES_COLLECTION
from jmo_profile_update.domain import profile as profiles

#: Fields never printed: keyed hashes of one-time codes (SPEC §4) are of no use to an auditor.
HIDDEN = frozenset({"code_hmac", "hmac_key_id"})


def open_event(event: RecordedEvent) -> Message | None:
    """The event as its current model, as the services fold it (an erased participant's personal
    fields read ``[erased]``, see :meth:`~jmo_eventstore.RecordedEvent.open`). Unknown types are skipped."""
    try:
        return event.open()
    except UnknownMessageType:
        return None


def cut(events: Sequence[RecordedEvent], at: datetime) -> list[RecordedEvent]:
    """The longest prefix of whole commits whose events all occurred at or before ``at``."""
    late = {e.commit_id for e in events if e.envelope.occurred_at > at}
    out: list[RecordedEvent] = []
    for e in events:
        if e.commit_id in late:
            break
        out.append(e)
    return out


def fold(decider: Any, events: Iterable[RecordedEvent]) -> Any:
    return decider.fold(m for m in map(open_event, events) if m is not None)


def plain(value: Any) -> Any:
    """A folded state as JSON-ready data (dataclasses, pydantic models, enums, sets, instants)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in HIDDEN}
    if isinstance(value, BaseModel):
        return {k: plain(v) for k, v in value.model_dump(mode="json").items() if k not in HIDDEN}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items() if k not in HIDDEN}
    if isinstance(value, frozenset | set):
        return sorted(plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


async def known_sessions(stores: Mapping[str, EventStore], participant_id: str, identity_events: Sequence[RecordedEvent]) -> list[str]:
    """The participant's pengkinian-data sessions, found by key (see the module docstring)."""
    found: list[str] = []
    store = stores.get("profile-update")
    commits = getattr(store, "commits", None)
    if commits is not None:
        doc = await commits.database[PROFILES_COLLECTION].find_one({"_id": participant_id}, {"sessions": 1, "last_session_id": 1})
        if doc is not None:
            found.extend(doc.get("sessions") or ([doc["last_session_id"]] if doc.get("last_session_id") else []))
    for e in identity_events:
        session = e.envelope.payload.get("profile_update_session_id") or e.envelope.payload.get("session_id")
        if isinstance(session, str):
            found.append(session)
    return list(dict.fromkeys(found))


async def read(stores: Mapping[str, EventStore], service: str, stream: str) -> list[RecordedEvent]:
    store = stores.get(service)
    return [] if store is None else await store.read_stream(stream)


def _stream_summary(stream: str, events: Sequence[RecordedEvent], upto: Sequence[RecordedEvent]) -> dict[str, Any]:
    last = upto[-1] if upto else None
    return {
        "stream_id": stream,
        "version": last.stream_version if last else 0,
        "events_then": len(upto),
        "events_now": len(events),
        "last_event": None if last is None else {"type": last.envelope.type, "occurred_at": last.envelope.occurred_at.isoformat()},
    }


async def state_at(stores: Mapping[str, EventStore], participant_id: str, at: datetime) -> dict[str, Any]:
    """Registration, identity, profile and sessions (with their selfie checks) as they were at ``at``."""
    from jmo_biometric.domain.selfie import selfie
    from jmo_identity.domain.identity import identity
    from jmo_profile_update.domain.session import session
    from jmo_registration.domain.registration import registration

    reg_stream, id_stream = f"registration-{participant_id}", f"identity-{participant_id}"
    reg_all, id_all = await read(stores, "registration", reg_stream), await read(stores, "identity", id_stream)
    reg, ident = cut(reg_all, at), cut(id_all, at)
    out: dict[str, Any] = {"participant_id": participant_id, "at": at.isoformat(), "cut_by": "occurred_at (whole commits, in stream order)"}
    out["registration"] = _stream_summary(reg_stream, reg_all, reg) | {"state": plain(fold(registration, reg))}
    out["identity"] = _stream_summary(id_stream, id_all, ident) | {"state": plain(fold(identity, ident))}

    sessions: list[dict[str, Any]] = []
    updates: list[RecordedEvent] = []
    for sid in await known_sessions(stores, participant_id, id_all):
        stream = f"profile-update-{sid}"
        all_events = await read(stores, "profile-update", stream)
        then = cut(all_events, at)
        if not then:
            continue  # the session had not started at the instant
        bio_stream = f"biometric-{sid}"
        bio_all = await read(stores, "biometric", bio_stream)
        bio = cut(bio_all, at)
        sessions.append(
            {"session_id": sid, **_stream_summary(stream, all_events, then), "state": plain(fold(session, then)),
             "selfie": _stream_summary(bio_stream, bio_all, bio) | {"state": plain(fold(selfie, bio))}}
        )
        updates.extend(e for e in then if e.envelope.type == "ProfileUpdated")
    out["sessions"] = sessions

    profile: dict[str, Any] | None = None
    folded = sorted((e for e in [*reg, *updates] if e.envelope.type in profiles.FOLDED), key=lambda e: (e.envelope.occurred_at, e.stream_id, e.stream_version))
    for e in folded:
        profile = profiles.apply(profile, e.envelope)
    if profile is not None:
        profile.pop("applied", None)  # bookkeeping of the live model (message ids), not state
    out["profile"] = profile
    return out
