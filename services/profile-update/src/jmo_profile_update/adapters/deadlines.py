"""Open sessions and when they expire, so the scheduler finds them without reading every stream.
One small document per open session, written and deleted by ``_id`` (the stream id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection


@dataclass(frozen=True)
class Deadline:
    stream_id: str
    participant_id: str
    session_id: str
    expires_at: datetime
    correlation_id: str


class SessionDeadlines(Protocol):
    async def set(self, deadline: Deadline) -> None:
        """Record (or move) the inactivity deadline of an open session."""

    async def clear(self, stream_id: str) -> None:
        """The session is closed: nothing left to expire."""

    async def due(self, now: datetime) -> list[Deadline]:
        """Open sessions whose deadline has passed."""


class MongoSessionDeadlines:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def set(self, deadline: Deadline) -> None:
        doc = {"participant_id": deadline.participant_id, "session_id": deadline.session_id, "expires_at": deadline.expires_at.isoformat(), "correlation_id": deadline.correlation_id}
        await self._c.replace_one({"_id": deadline.stream_id}, doc, upsert=True)

    async def clear(self, stream_id: str) -> None:
        await self._c.delete_one({"_id": stream_id})

    async def due(self, now: datetime) -> list[Deadline]:
        docs = [d async for d in self._c.find({})]  # small: open sessions only; read to the end
        found = [Deadline(d["_id"], d["participant_id"], d["session_id"], datetime.fromisoformat(d["expires_at"]), d["correlation_id"]) for d in docs]
        return [d for d in found if d.expires_at <= now]


class InMemorySessionDeadlines:
    def __init__(self) -> None:
        self.open: dict[str, Deadline] = {}

    async def set(self, deadline: Deadline) -> None:
        self.open[deadline.stream_id] = deadline

    async def clear(self, stream_id: str) -> None:
        self.open.pop(stream_id, None)

    async def due(self, now: datetime) -> list[Deadline]:
        return [d for d in self.open.values() if d.expires_at <= now]
