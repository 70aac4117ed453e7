"""How often something may happen per key in a time window, across every instance of a service:
OTP codes per destination, registrations per NIK (SPEC §11: limits per participant, destination and
NIK; answers that would tell whether a NIK is registered are rate limited).

Keys are keyed hashes (:func:`quota_key`), never the personal value. Windows are fixed (counted
from the start of each window), one small document per key and window, changed only by ``_id``
(``findAndModify`` with ``$inc``, upserted): one round trip that an index serves on MongoDB and on
FerretDB. At a window's edge a key may get up to twice its limit in one window's length; the
documents carry ``expires_at`` for a TTL index to remove them on MongoDB.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from jmo_eventstore import ensure_ttl_index


def quota_key(secret: bytes, kind: str, value: str) -> str:
    """``<kind>:<hmac>`` for ``value`` (a NIK, an email, a phone number): stable, not reversible."""
    return f"{kind}:{hmac.new(secret, f'{kind}:{value}'.encode(), hashlib.sha256).hexdigest()[:32]}"


class Quota(Protocol):
    """At most ``limit`` uses of a key per ``window``."""

    async def take(self, key: str, now: datetime) -> bool:
        """Use the key once; False when it was used ``limit`` times in the current window already."""


def _window_start(now: datetime, window: timedelta) -> int:
    seconds = int(window.total_seconds())
    return int(now.timestamp()) // seconds * seconds


class InMemoryQuota:
    def __init__(self, limit: int, window: timedelta) -> None:
        self.limit, self.window = limit, window
        self.used: dict[tuple[str, int], int] = {}

    async def take(self, key: str, now: datetime) -> bool:
        slot = (key, _window_start(now, self.window))
        if self.used.get(slot, 0) >= self.limit:
            return False
        self.used[slot] = self.used.get(slot, 0) + 1
        return True


class MongoQuota:
    def __init__(self, collection: AsyncCollection, limit: int, window: timedelta) -> None:
        self._c, self.limit, self.window = collection, limit, window

    async def ensure_indexes(self) -> bool:
        """The TTL index that removes past windows; False where the server has none (FerretDB v1,
        the embedded store: there past windows stay, one small document per key and hour)."""
        return await ensure_ttl_index(self._c, "expires_at", name="quota_ttl")

    async def take(self, key: str, now: datetime) -> bool:
        start = _window_start(now, self.window)
        doc = await self._c.find_one_and_update(
            {"_id": f"{key}@{start}"},
            {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": datetime.fromtimestamp(start, now.tzinfo) + 2 * self.window}},
            upsert=True, return_document=ReturnDocument.AFTER,
        )
        return int(doc["n"]) <= self.limit


class ServiceQuota:
    """A quota kept in a service's database, built when the service starts (in memory when it runs
    without a database); see :meth:`jmo_runtime.Service.quota`."""

    def __init__(self, database_of: Callable[[], AsyncDatabase | None], collection: str, limit: int, window: timedelta) -> None:
        self._database_of, self._collection, self.limit, self.window = database_of, collection, limit, window
        self._backend: Quota | None = None

    async def start(self) -> None:
        database = self._database_of()
        if database is None:
            self._backend = InMemoryQuota(self.limit, self.window)
            return
        backend = MongoQuota(database[self._collection], self.limit, self.window)
        await backend.ensure_indexes()
        self._backend = backend

    async def take(self, key: str, now: datetime) -> bool:
        if self._backend is None:
            raise RuntimeError("the quota exists once the service has started")
        return await self._backend.take(key, now)
