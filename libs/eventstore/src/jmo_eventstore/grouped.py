"""Group commit: ordered inserts that arrive while one is in flight go to the server together.

A store round trip costs far more than the documents in it (``bench/round_trip.py``: an insert of
one document ~150 µs of the client's CPU and ~165 µs of FerretDB's; of five, ~40 and ~55 per
document). Under load a service appends from several handlers at once, so while one insert is on
the wire others are waiting for it: :class:`GroupedInserts` sends those together as the next
``insert`` command, and behaves for each caller exactly like its own
``insert_many(docs, ordered=True)``:

* the caller's documents land in order, after everything submitted before them, or not at all
  from the first that fails on;
* a document refused (a duplicate key) raises :class:`~pymongo.errors.BulkWriteError` with its
  index *in the caller's list*; the caller's documents before it landed, none after it;
* an error that says nothing of what landed (the connection dropped, a timeout) reaches every
  caller whose documents were in that command, as it would have reached each of them alone.

An ordered insert stops at the first refused document, so the callers after it in the same
command were not attempted: they are sent again, first, in the next command. With nothing in
flight a caller's insert goes out at once, in its own task; no insert ever waits for a timer.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

#: The server's code for a write refused by a unique index.
DUPLICATE_KEY = 11000
#: Documents per grouped command, by default: FerretDB v1 mishandles bulk writes of 100 or more.
GROUP_LIMIT = 90


@dataclass(eq=False)
class _Waiting:
    items: Sequence[Any]  # documents to insert, or write operations
    done: asyncio.Future[None]
    sent: bool = field(default=False)


class _OneInFlight:
    """One command on the wire at a time: what callers ask meanwhile waits, and once the command
    in flight is answered a drainer task sends what waits, in turns, until nothing does."""

    def __init__(self) -> None:
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks
        self.sizes: Counter[int] = Counter()

    def _has_waiting(self) -> bool:
        raise NotImplementedError

    async def _send_waiting(self) -> None:
        """Send the next group of what waits, and answer its callers."""
        raise NotImplementedError

    def _abandon_waiting(self) -> None:
        """Cancel what still waits (only when the drainer itself is cancelled: the loop is closing)."""
        raise NotImplementedError

    def _next(self) -> None:
        if self._has_waiting():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._has_waiting():
                await self._send_waiting()
        finally:
            self._abandon_waiting()
            self._busy = False
            self._drainer = None


class _OrderedGroups(_OneInFlight):
    """Ordered writes into ``collection`` (a caller's items in one command, in order), grouped while
    one is in flight: the machinery of :class:`GroupedInserts` and :class:`GroupedWrites`.

    ``max_items`` bounds the items of a grouped command (a caller's own items are never split);
    ``sizes`` counts the commands sent by how many callers each carried, for tests and benchmarks."""

    def __init__(self, collection: AsyncCollection, *, max_items: int = GROUP_LIMIT) -> None:
        super().__init__()
        self._collection = collection
        self._max_items = max_items
        self._waiting: deque[_Waiting] = deque()

    async def _command(self, items: Sequence[Any]) -> None:
        """Send ``items`` as one ordered command; a refused item raises :class:`BulkWriteError`
        with its index in ``items``."""
        raise NotImplementedError

    async def _submit(self, items: Sequence[Any]) -> None:
        if not self._busy:
            self._busy = True
            try:
                self.sizes[1] += 1
                await self._command(items)
            finally:
                self._next()
            return
        waiting = _Waiting(items, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        try:
            await waiting.done
        except asyncio.CancelledError:
            if not waiting.sent:  # not on the wire yet: it never will be
                self._waiting.remove(waiting)
            raise

    def _has_waiting(self) -> bool:
        return bool(self._waiting)

    async def _send_waiting(self) -> None:
        await self._send(self._take())

    def _abandon_waiting(self) -> None:
        for waiting in self._waiting:
            if not waiting.done.done():
                waiting.done.cancel()
        self._waiting.clear()

    def _take(self) -> list[_Waiting]:
        group = [self._waiting.popleft()]
        count = len(group[0].items)
        while self._waiting and count + len(self._waiting[0].items) <= self._max_items:
            count += len(self._waiting[0].items)
            group.append(self._waiting.popleft())
        for waiting in group:
            waiting.sent = True
        return group

    async def _send(self, group: list[_Waiting]) -> None:
        self.sizes[len(group)] += 1
        try:
            await self._command([item for waiting in group for item in waiting.items])
        except BulkWriteError as e:
            self._answer_refusal(group, e)
        except asyncio.CancelledError as e:  # the loop is closing
            for waiting in group:
                _settle(waiting, e)
            raise
        except Exception as e:  # nothing says what landed: each caller learns it as from its own command
            for waiting in group:
                _settle(waiting, e)
        else:
            for waiting in group:
                _settle(waiting, None)

    def _answer_refusal(self, group: list[_Waiting], error: BulkWriteError) -> None:
        """Each caller's part of an ordered command that stopped at one refused item."""
        refused = error.details.get("writeErrors") or []
        if not refused:
            for waiting in group:
                _settle(waiting, error)
            return
        at = refused[0]["index"]
        start = 0
        again: list[_Waiting] = []
        for waiting in group:
            end = start + len(waiting.items)
            if end <= at:
                _settle(waiting, None)
            elif start <= at:
                _settle(waiting, BulkWriteError({**error.details, "writeErrors": [{**refused[0], "index": at - start}], "nInserted": at - start}))
            else:
                waiting.sent = False  # never attempted: first in the next command
                again.append(waiting)
            start = end
        self._waiting.extendleft(reversed([w for w in again if not w.done.done()]))


class GroupedInserts(_OrderedGroups):
    """Ordered inserts into ``collection``, grouped while one is in flight (see the module).

    ``max_docs`` bounds the documents of a grouped command (a caller's own documents are never
    split); ``sizes`` counts the commands sent by how many callers each carried (bounded by
    ``max_docs``), for tests and benchmarks."""

    def __init__(self, collection: AsyncCollection, *, max_docs: int = GROUP_LIMIT) -> None:
        super().__init__(collection, max_items=max_docs)

    async def insert(self, docs: Sequence[dict[str, Any]]) -> None:
        """Insert ``docs`` in order, as ``insert_many(docs, ordered=True)`` would (see the module)."""
        await self._submit(docs)

    async def insert_one(self, doc: dict[str, Any]) -> None:
        """Insert one document, as ``insert_one`` would: :class:`~pymongo.errors.DuplicateKeyError`
        when a unique key of it is taken."""
        try:
            await self.insert([doc])
        except BulkWriteError as e:
            raise _single(e) from None

    async def _command(self, items: Sequence[Any]) -> None:
        await self._collection.insert_many(items, ordered=True)


class GroupedWrites(_OrderedGroups):
    """Single writes into ``collection`` (``ReplaceOne``, ``UpdateOne``, ``DeleteOne`` by ``_id``),
    grouped while one is in flight into one ordered ``bulk_write``: they apply in the order they
    were asked, so a later write to a document is never overtaken by an earlier one; each caller
    sees what its own ``replace_one`` / ``update_one`` / ``delete_one`` would have (a refusal
    raised to it alone, those after it sent again; an error that says nothing of what was applied
    to every caller of that command). Route every write to the collection that must keep its order
    with these through the same instance.

    FerretDB v1 answers a grouped ``update`` in which one write is refused without ``nModified``,
    which PyMongo cannot read (``KeyError``): there every caller of that command gets that error,
    as for a dropped connection. Meant for writes the server does not refuse (upserts and deletes
    by ``_id``)."""

    async def write(self, operation: Any) -> None:
        """Apply one pymongo write operation, in order after those asked before it."""
        try:
            await self._submit([operation])
        except BulkWriteError as e:
            raise _single(e) from None

    async def _command(self, items: Sequence[Any]) -> None:
        await self._collection.bulk_write(list(items), ordered=True)


def _single(error: BulkWriteError) -> Exception:
    """What a single write raises for the refusal an ordered command reported."""
    refused = (error.details.get("writeErrors") or [{}])[0]
    if refused.get("code") == DUPLICATE_KEY:
        return DuplicateKeyError(refused.get("errmsg", "duplicate key"), DUPLICATE_KEY, refused)
    if refused:
        return WriteError(refused.get("errmsg", "write refused"), refused.get("code"), refused)
    return error


def _settle(waiting: _Waiting, outcome: BaseException | None) -> None:
    if waiting.done.done():  # its caller was cancelled while its documents were on the wire
        return
    if outcome is None:
        waiting.done.set_result(None)
    elif isinstance(outcome, asyncio.CancelledError):
        waiting.done.cancel()
    else:
        waiting.done.set_exception(outcome)


class GroupedLookups(_OneInFlight):
    """Look-ups of one document by ``_id`` in ``collection``, grouped while one is in flight.

    The look-ups that arrive while one is on the wire go out together as the next
    ``find({_id: {$in: [...]}})`` (at most ``max_ids`` ids each), which an index serves on MongoDB
    and on the embedded store alike; each caller gets its document (or ``None``) as from its own
    ``find_one({_id: ...})``, as the server had it when the command was sent, so never older than
    when the caller asked. With nothing in flight a look-up goes out at once; none waits for a
    timer. ``sizes`` counts the commands sent by how many distinct ids each carried."""

    def __init__(self, collection: AsyncCollection, *, max_ids: int = GROUP_LIMIT) -> None:
        super().__init__()
        self._collection = collection
        self._max_ids = max_ids
        self._waiting: dict[Any, list[asyncio.Future[dict[str, Any] | None]]] = {}

    async def find_one(self, _id: Any) -> dict[str, Any] | None:
        """The document whose ``_id`` is ``_id``, or ``None``."""
        if not self._busy:
            self._busy = True
            try:
                self.sizes[1] += 1
                return await self._collection.find_one({"_id": _id})
            finally:
                self._next()
        found: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(_id, []).append(found)
        return await found  # a caller cancelled meanwhile is skipped when the answer comes

    def _has_waiting(self) -> bool:
        return bool(self._waiting)

    async def _send_waiting(self) -> None:
        ids = list(self._waiting)[: self._max_ids]
        await self._send({i: self._waiting.pop(i) for i in ids})

    def _abandon_waiting(self) -> None:
        for futures in self._waiting.values():
            for found in futures:
                found.cancel()
        self._waiting.clear()

    async def _send(self, group: dict[Any, list[asyncio.Future[dict[str, Any] | None]]]) -> None:
        self.sizes[len(group)] += 1
        try:
            docs = await self._collection.find({"_id": {"$in": list(group)}}).to_list(None)
        except asyncio.CancelledError:
            for futures in group.values():
                for found in futures:
                    found.cancel()
            raise
        except Exception as e:  # each caller learns it as from its own find_one
            for futures in group.values():
                for found in futures:
                    if not found.done():
                        found.set_exception(e)
            return
        by_id = {doc["_id"]: doc for doc in docs}
        for _id, futures in group.items():
            for found in futures:
                if not found.done():
                    found.set_result(dict(by_id[_id]) if _id in by_id else None)
