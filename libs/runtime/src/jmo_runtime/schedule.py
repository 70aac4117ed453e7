"""Things a service must do later (expire a session, retry a registry call), kept so a periodic job
finds what is due without reading every stream. One small document per key, written and deleted by
``_id`` — the only filter FerretDB v1 answers from an index. ``due`` asks for what is due by time:
on MongoDB the index on ``at`` (``schedule_at``) serves it; FerretDB v1 scans the collection, which
holds only work still open (not the log)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pymongo import ASCENDING, DeleteOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from jmo_eventstore import GroupedWrites


@dataclass(frozen=True)
class Due:
    """``key`` (usually a stream id) is due at ``at``; ``data`` is what the job needs to act on it."""

    key: str
    at: datetime
    data: Mapping[str, str] = field(default_factory=dict)


class Schedule(Protocol):
    async def set(self, due: Due) -> None:
        """Plan (or move) ``due.key``."""

    async def clear(self, key: str) -> None:
        """Nothing left to do for ``key``."""

    async def due(self, now: datetime) -> list[Due]:
        """Everything planned at or before ``now``."""


class MongoSchedule:
    """``{_id: key, at: <ISO-8601 UTC>, data}``; ``at`` compares as text because every instant is
    written in the same UTC form."""

    def __init__(self, collection: AsyncCollection, *, limit: int = 1000) -> None:
        self._c = collection
        self._writes = GroupedWrites(collection)  # set and clear, in the order asked; those asked at once share a command
        self._limit = limit
        self._indexed = False

    async def ensure_indexes(self) -> None:
        await self._c.create_index([("at", ASCENDING)], name="schedule_at")
        self._indexed = True

    async def set(self, due: Due) -> None:
        await self._writes.write(ReplaceOne({"_id": due.key}, {"at": _utc(due.at), "data": dict(due.data)}, upsert=True))

    async def clear(self, key: str) -> None:
        await self._writes.write(DeleteOne({"_id": key}))

    async def due(self, now: datetime) -> list[Due]:
        """What is due at ``now``, earliest first, at most ``limit`` per call (the rest next time)."""
        if not self._indexed:
            await self.ensure_indexes()
        found = await self._c.find({"at": {"$lte": _utc(now)}}).sort("at", ASCENDING).limit(self._limit).to_list()
        planned = [Due(d["_id"], datetime.fromisoformat(d["at"]), d.get("data", {})) for d in found]
        return [d for d in planned if d.at <= now]


def _utc(at: datetime) -> str:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


class InMemorySchedule:
    def __init__(self) -> None:
        self.planned: dict[str, Due] = {}

    async def set(self, due: Due) -> None:
        self.planned[due.key] = due

    async def clear(self, key: str) -> None:
        self.planned.pop(key, None)

    async def due(self, now: datetime) -> list[Due]:
        return sorted((d for d in self.planned.values() if d.at <= now), key=lambda d: d.at)


class ServiceSchedule:
    """A schedule kept in a service's database, built when the service starts (in memory when it
    runs without a database); see :meth:`jmo_runtime.Service.schedule`."""

    def __init__(self, database_of: Callable[[], AsyncDatabase | None], collection: str) -> None:
        self._database_of, self._collection = database_of, collection
        self._backend: Schedule | None = None

    async def start(self) -> None:
        database = self._database_of()
        if database is None:
            self._backend = InMemorySchedule()
            return
        backend = MongoSchedule(database[self._collection])
        await backend.ensure_indexes()
        self._backend = backend

    def _started(self) -> Schedule:
        if self._backend is None:
            raise RuntimeError("the schedule exists once the service has started")
        return self._backend

    async def set(self, due: Due) -> None:
        await self._started().set(due)

    async def clear(self, key: str) -> None:
        await self._started().clear(key)

    async def due(self, now: datetime) -> list[Due]:
        return await self._started().due(now)
