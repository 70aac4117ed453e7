"""The notification service's own collections: the contact directory and the delivery claims.

FerretDB v1 shapes both: every read and write is keyed by ``{_id: <string>}`` (the only filter that
uses an index there), no cursor is left open, documents are flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jmo_eventstore import GroupedInserts, GroupedWrites
from jmo_runtime.sealing import open_text, seal_text

from ..domain.notices import Contact

# --- contact directory ------------------------------------------------------------------------


class Directory(Protocol):
    """Where each participant is reached, as the registration and profile events said last."""

    async def remember(self, contact: Contact, at: datetime) -> None: ...

    async def find(self, participant_id: str) -> Contact | None: ...


class MemoryDirectory:
    def __init__(self) -> None:
        self.contacts: dict[str, Contact] = {}

    async def remember(self, contact: Contact, at: datetime) -> None:
        self.contacts[contact.participant_id] = contact

    async def find(self, participant_id: str) -> Contact | None:
        return self.contacts.get(participant_id)


class MongoDirectory:
    """``{_id: participant_id, email, phone, channel, updated_at}`` with email and phone sealed
    (AES-256-GCM under the service's data key, bound to participant and field). Erasing a
    participant's contact data is deleting their document."""

    def __init__(self, collection: AsyncCollection, key: bytes) -> None:
        self.collection = collection
        self.key = key
        self._writes = GroupedWrites(collection)  # contacts remembered at once share a command

    def _seal(self, participant_id: str, name: str, value: str | None) -> str | None:
        return None if value is None else seal_text(self.key, f"{participant_id}:{name}", value)

    def _open(self, participant_id: str, name: str, value: str | None) -> str | None:
        return None if value is None else open_text(self.key, f"{participant_id}:{name}", value)

    async def remember(self, contact: Contact, at: datetime) -> None:
        pid = contact.participant_id
        doc = {"email": self._seal(pid, "email", contact.email), "phone": self._seal(pid, "phone", contact.phone), "channel": contact.channel, "updated_at": at}
        await self._writes.write(UpdateOne({"_id": pid}, {"$set": doc}, upsert=True))

    async def find(self, participant_id: str) -> Contact | None:
        doc = await self.collection.find_one({"_id": participant_id})
        if doc is None:
            return None
        return Contact(participant_id, self._open(participant_id, "email", doc.get("email")), self._open(participant_id, "phone", doc.get("phone")), doc["channel"])


# --- delivery claims --------------------------------------------------------------------------


class Claim(StrEnum):
    NEW = "NEW"  # ours: nobody had claimed it
    TAKEN_OVER = "TAKEN_OVER"  # ours: claimed earlier (a crash, or another instance's stale lease)
    DONE = "DONE"  # its outcome is recorded: nothing to do
    BUSY = "BUSY"  # another instance holds a fresh lease on it


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    retry_at: datetime | None = None  # BUSY: when the other lease ends


class Claims(Protocol):
    """Who sends a notification: the first to insert its ``_id``; an outcome ends it for good."""

    async def claim(self, notification_id: str, owner: str, now: datetime, lease: timedelta) -> ClaimResult: ...

    async def settle(self, notification_id: str, outcome: str, now: datetime) -> None: ...


def _decide(doc: dict[str, Any], owner: str, now: datetime, lease: timedelta) -> ClaimResult | None:
    if doc.get("outcome"):
        return ClaimResult(Claim.DONE)
    claimed_at = doc["claimed_at"]
    if claimed_at.tzinfo is None:
        claimed_at = claimed_at.replace(tzinfo=now.tzinfo)
    if doc.get("owner") == owner or now - claimed_at >= lease:
        return None  # take it over
    return ClaimResult(Claim.BUSY, claimed_at + lease)


class MemoryClaims:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def claim(self, notification_id: str, owner: str, now: datetime, lease: timedelta) -> ClaimResult:
        doc = self.docs.get(notification_id)
        if doc is None:
            self.docs[notification_id] = {"owner": owner, "claimed_at": now, "outcome": None}
            return ClaimResult(Claim.NEW)
        if (result := _decide(doc, owner, now, lease)) is not None:
            return result
        doc.update(owner=owner, claimed_at=now)
        return ClaimResult(Claim.TAKEN_OVER)

    async def settle(self, notification_id: str, outcome: str, now: datetime) -> None:
        self.docs[notification_id].update(outcome=outcome, settled_at=now)


#: Where the notification service's log keeps the outcome of a notification: its stream
#: ``notification-<id>`` (see ``Notifier._record``), whose first commit has this ``_id``.
OUTCOME_LOG = "events_commits"


def outcome_commit(notification_id: str) -> str:
    return f"notification-{notification_id}@0"


class MongoClaims:
    """``{_id: notification_id, owner, claimed_at, outcome}``; the unique ``_id`` decides who sends.

    A notification is done once its outcome (NotificationSent / NotificationFailed) is in the
    service's log, which the notifier records before settling: a claim that collides looks the
    outcome up there by ``_id``, so settling writes nothing (one round trip less per notice).
    Claims that arrive while one is being inserted go together in the next insert
    (:class:`~jmo_eventstore.GroupedInserts`): each is still decided by its own ``_id`` alone.
    """

    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection
        self.outcomes = collection.database[OUTCOME_LOG]
        self._inserts = GroupedInserts(collection)

    async def claim(self, notification_id: str, owner: str, now: datetime, lease: timedelta) -> ClaimResult:
        try:
            await self._inserts.insert_one({"_id": notification_id, "owner": owner, "claimed_at": now, "outcome": None})
            return ClaimResult(Claim.NEW)
        except DuplicateKeyError:
            pass
        if await self.outcomes.find_one({"_id": outcome_commit(notification_id)}, {"_id": 1}) is not None:
            return ClaimResult(Claim.DONE)
        doc = await self.collection.find_one({"_id": notification_id})
        if doc is None:  # claims are never deleted; treat a vanished one as new
            return await self.claim(notification_id, owner, now, lease)
        if (result := _decide(doc, owner, now, lease)) is not None:
            return result
        # Keyed by _id alone (a conditional filter would scan on FerretDB): two instances taking
        # over the same stale claim at the same instant may both send; the provider's idempotency
        # key (Message-ID / Idempotency-Key) keeps the participant from seeing it twice.
        await self.collection.update_one({"_id": notification_id}, {"$set": {"owner": owner, "claimed_at": now}})
        return ClaimResult(Claim.TAKEN_OVER)

    async def settle(self, notification_id: str, outcome: str, now: datetime) -> None:
        """Nothing to write: the outcome is the notification's commit in the log (see the class)."""
