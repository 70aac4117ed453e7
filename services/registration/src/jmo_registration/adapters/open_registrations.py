"""Registrations not yet finished, so a scheduler can expire them without scanning every stream.
One small document per open registration, inserted and deleted by ``_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


class OpenRegistrations(Protocol):
    async def opened(self, stream_id: str, registered_at: datetime, correlation_id: str) -> None: ...

    async def closed(self, stream_id: str) -> None: ...

    async def registered_before(self, moment: datetime) -> list[tuple[str, datetime, str]]:
        """(stream id, registered at, correlation id) of open registrations older than ``moment``."""


class MongoOpenRegistrations:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def opened(self, stream_id: str, registered_at: datetime, correlation_id: str) -> None:
        try:
            await self._c.insert_one({"_id": stream_id, "registered_at": registered_at.isoformat(), "correlation_id": correlation_id})
        except DuplicateKeyError:
            pass

    async def closed(self, stream_id: str) -> None:
        await self._c.delete_one({"_id": stream_id})

    async def registered_before(self, moment: datetime) -> list[tuple[str, datetime, str]]:
        docs = [d async for d in self._c.find({})]  # small: only unfinished registrations
        found = [(d["_id"], datetime.fromisoformat(d["registered_at"]), d["correlation_id"]) for d in docs]
        return [f for f in found if f[1] < moment]


class InMemoryOpenRegistrations:
    def __init__(self) -> None:
        self.open: dict[str, tuple[datetime, str]] = {}

    async def opened(self, stream_id: str, registered_at: datetime, correlation_id: str) -> None:
        self.open.setdefault(stream_id, (registered_at, correlation_id))

    async def closed(self, stream_id: str) -> None:
        self.open.pop(stream_id, None)

    async def registered_before(self, moment: datetime) -> list[tuple[str, datetime, str]]:
        return [(s, at, c) for s, (at, c) in self.open.items() if at < moment]
