"""How often something may happen per key in a time window, across every instance of a service:
OTP codes per destination, registrations per NIK (SPEC §11: limits per participant, destination and
NIK; answers that would tell whether a NIK is registered are rate limited).

Keys are keyed hashes (:func:`quota_key`), never the personal value. Windows are fixed (counted
from the start of each window). On the store each use is a document of its own,
``<key>@<window start>#<n>`` for ``n`` = 1 … limit, and is taken by inserting it: the insert lands
(the use is ours) or meets the ``_id`` index (another instance, or this one before a restart, took
that use first: the next is tried). Each instance remembers the next use it expects per key, so a
take is one insert, and the uses of several keys taken together (a NIK and a destination) are one
ordered insert, shared with the takes of concurrent handlers (:class:`~jmo_eventstore.GroupedInserts`).
An index serves it on MongoDB and on FerretDB. At a window's edge a key may get up to twice its
limit in one window's length; the documents carry ``expires_at`` for a TTL index to remove them on
MongoDB.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from jmo_eventstore import GroupedInserts, ensure_ttl_index
from jmo_eventstore.grouped import DUPLICATE_KEY

#: Keys whose next use an instance remembers; a key forgotten costs one refused insert per use
#: already taken in its window (a few) the next time it is taken.
REMEMBERED_KEYS = 8192


def quota_key(secret: bytes, kind: str, value: str) -> str:
    """``<kind>:<hmac>`` for ``value`` (a NIK, an email, a phone number): stable, not reversible."""
    return f"{kind}:{hmac.new(secret, f'{kind}:{value}'.encode(), hashlib.sha256).hexdigest()[:32]}"


class Quota(Protocol):
    """At most ``limit`` uses of a key per ``window``."""

    async def take(self, key: str, now: datetime) -> bool:
        """Use the key once; False when it was used ``limit`` times in the current window already."""

    async def take_each(self, keys: Sequence[str], now: datetime) -> bool:
        """``take`` each of ``keys`` in order, stopping at the first refused (that one and those
        after it are not used): True when none was refused."""


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

    async def take_each(self, keys: Sequence[str], now: datetime) -> bool:
        for key in keys:
            if not await self.take(key, now):
                return False
        return True


class MongoQuota:
    """A quota whose uses are documents of ``collection`` (see the module)."""

    def __init__(self, collection: AsyncCollection, limit: int, window: timedelta, *, remembered: int = REMEMBERED_KEYS) -> None:
        self._c, self.limit, self.window = collection, limit, window
        self._inserts = GroupedInserts(collection)
        self._next: OrderedDict[str, int] = OrderedDict()  # "<key>@<window start>" -> the use to try next
        self._remembered = remembered

    async def ensure_indexes(self) -> bool:
        """The TTL index that removes past windows; False where the server has none (FerretDB v1,
        the embedded store: there past windows stay, one small document per use)."""
        return await ensure_ttl_index(self._c, "expires_at", name="quota_ttl")

    async def take(self, key: str, now: datetime) -> bool:
        return await self.take_each([key], now)

    async def take_each(self, keys: Sequence[str], now: datetime) -> bool:
        start = _window_start(now, self.window)
        expires_at = datetime.fromtimestamp(start, now.tzinfo) + 2 * self.window
        windows = [f"{key}@{start}" for key in keys]
        while windows:
            uses = [self._next.get(w, 1) for w in windows]
            if uses[0] > self.limit:
                return False
            within = next((i for i, n in enumerate(uses) if n > self.limit), len(uses))
            docs = [{"_id": f"{w}#{n}", "expires_at": expires_at} for w, n in zip(windows[:within], uses[:within], strict=True)]
            try:
                await self._inserts.insert(docs)
                landed = len(docs)
            except BulkWriteError as e:
                refused = (e.details.get("writeErrors") or [{}])[0]
                if refused.get("code") != DUPLICATE_KEY:
                    raise
                landed = refused["index"]
                self._remember(windows[landed], uses[landed] + 1)  # that use was taken first elsewhere
            for w, n in zip(windows[:landed], uses[:landed], strict=True):
                self._remember(w, n + 1)
            if landed == within < len(windows):
                return False  # the next key is used up: it and those after it are not taken
            windows = windows[landed:]
        return True

    def _remember(self, window: str, next_use: int) -> None:
        self._next[window] = max(next_use, self._next.get(window, 1))  # concurrent takes may learn out of order
        self._next.move_to_end(window)
        while len(self._next) > self._remembered:
            self._next.popitem(last=False)


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
        return await self.take_each([key], now)

    async def take_each(self, keys: Sequence[str], now: datetime) -> bool:
        if self._backend is None:
            raise RuntimeError("the quota exists once the service has started")
        return await self._backend.take_each(keys, now)
