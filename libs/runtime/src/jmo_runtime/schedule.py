"""Things a service must do later (expire a session, retry a registry call), kept so a periodic job
finds what is due without reading every stream. One small document per key, written and deleted by
``_id`` — the only filter FerretDB v1 answers from an index; ``due`` reads the (small) collection
to the end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection


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
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def set(self, due: Due) -> None:
        await self._c.replace_one({"_id": due.key}, {"at": due.at.isoformat(), "data": dict(due.data)}, upsert=True)

    async def clear(self, key: str) -> None:
        await self._c.delete_one({"_id": key})

    async def due(self, now: datetime) -> list[Due]:
        planned = [Due(d["_id"], datetime.fromisoformat(d["at"]), d.get("data", {})) async for d in self._c.find({})]
        return [d for d in planned if d.at <= now]


class InMemorySchedule:
    def __init__(self) -> None:
        self.planned: dict[str, Due] = {}

    async def set(self, due: Due) -> None:
        self.planned[due.key] = due

    async def clear(self, key: str) -> None:
        self.planned.pop(key, None)

    async def due(self, now: datetime) -> list[Due]:
        return [d for d in self.planned.values() if d.at <= now]
