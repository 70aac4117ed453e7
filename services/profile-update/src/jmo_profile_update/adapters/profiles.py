"""Where the participant-profile read model lives: one document per participant, by ``_id``."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection

from jmo_contracts import Envelope

from ..domain import profile as profiles

#: The collection (in the profile-update service's database) that holds the live read model.
COLLECTION = "participant_profiles"


class ProfileStore(Protocol):
    async def get(self, participant_id: str) -> dict[str, Any] | None:
        """The participant's profile, or None when no event about them has been folded."""

    async def apply(self, envelope: Envelope) -> None:
        """Fold ``envelope`` into its participant's profile (idempotent; other events are ignored)."""


class _Folding:
    """Read, fold, write — one participant at a time within this process."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(self, participant_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def _put(self, doc: dict[str, Any]) -> None:
        raise NotImplementedError

    async def apply(self, envelope: Envelope) -> None:
        participant = profiles.participant_of(envelope)
        if participant is None:
            return
        async with self._locks[participant]:
            current = await self.get(participant)
            if current is not None and envelope.message_id in current.get("applied", ()):
                return
            updated = profiles.apply(current, envelope)
            if updated is not None:
                await self._put(updated)


class MongoProfileStore(_Folding):
    """The read model in MongoDB; every access is by ``_id`` (the only indexed filter on FerretDB)."""

    def __init__(self, collection: AsyncCollection) -> None:
        super().__init__()
        self._c = collection

    async def get(self, participant_id: str) -> dict[str, Any] | None:
        return await self._c.find_one({"_id": participant_id})

    async def _put(self, doc: dict[str, Any]) -> None:
        await self._c.replace_one({"_id": doc["_id"]}, doc, upsert=True)


class InMemoryProfileStore(_Folding):
    def __init__(self) -> None:
        super().__init__()
        self.docs: dict[str, dict[str, Any]] = {}

    async def get(self, participant_id: str) -> dict[str, Any] | None:
        doc = self.docs.get(participant_id)
        return dict(doc) if doc is not None else None

    async def _put(self, doc: dict[str, Any]) -> None:
        self.docs[doc["_id"]] = dict(doc)
