"""The pengkinian-data sessions in which a participant changed a contact, as profile-update's events
tell them: a ``CONTACT_CHANGE`` code goes only to a contact submitted in a live session of that
participant (SPEC §5 step 4, §11). Destinations are kept as keyed hashes, never in clear; one
document per session, written, read and deleted by ``_id``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection


@dataclass(frozen=True)
class ContactChange:
    """A live session's changed contacts: channel (``sms`` / ``email``) -> keyed hash of the new value."""

    session_id: str
    participant_id: str
    destinations: dict[str, str] = field(default_factory=dict)


class ContactChanges(Protocol):
    async def open(self, change: ContactChange) -> None:
        """Record (or replace) the session's changed contacts."""

    async def close(self, session_id: str) -> None:
        """The session ended: no more codes for it."""

    async def find(self, session_id: str) -> ContactChange | None:
        """The session's changed contacts while it is live."""


class InMemoryContactChanges:
    def __init__(self) -> None:
        self.live: dict[str, ContactChange] = {}

    async def open(self, change: ContactChange) -> None:
        self.live[change.session_id] = change

    async def close(self, session_id: str) -> None:
        self.live.pop(session_id, None)

    async def find(self, session_id: str) -> ContactChange | None:
        return self.live.get(session_id)


class MongoContactChanges:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def open(self, change: ContactChange) -> None:
        await self._c.replace_one({"_id": change.session_id}, {"participant_id": change.participant_id, "destinations": change.destinations}, upsert=True)

    async def close(self, session_id: str) -> None:
        await self._c.delete_one({"_id": session_id})

    async def find(self, session_id: str) -> ContactChange | None:
        doc = await self._c.find_one({"_id": session_id})
        return None if doc is None else ContactChange(session_id, doc["participant_id"], dict(doc.get("destinations", {})))
