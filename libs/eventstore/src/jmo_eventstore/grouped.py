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
from pymongo.errors import BulkWriteError, DuplicateKeyError

#: The server's code for a write refused by a unique index.
DUPLICATE_KEY = 11000
#: Documents per grouped command, by default: FerretDB v1 mishandles bulk writes of 100 or more.
GROUP_LIMIT = 90


@dataclass(eq=False)
class _Waiting:
    docs: Sequence[dict[str, Any]]
    done: asyncio.Future[None]
    sent: bool = field(default=False)


class GroupedInserts:
    """Ordered inserts into ``collection``, grouped while one is in flight (see the module).

    ``max_docs`` bounds the documents of a grouped command (a caller's own documents are never
    split); ``sizes`` counts the commands sent by how many callers each carried (bounded by
    ``max_docs``), for tests and benchmarks."""

    def __init__(self, collection: AsyncCollection, *, max_docs: int = GROUP_LIMIT) -> None:
        self._collection = collection
        self._max_docs = max_docs
        self._waiting: deque[_Waiting] = deque()
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks
        self.sizes: Counter[int] = Counter()

    async def insert(self, docs: Sequence[dict[str, Any]]) -> None:
        """Insert ``docs`` in order, as ``insert_many(docs, ordered=True)`` would (see the module)."""
        if not self._busy:
            self._busy = True
            try:
                self.sizes[1] += 1
                await self._collection.insert_many(docs, ordered=True)
            finally:
                self._next()
            return
        waiting = _Waiting(docs, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        try:
            await waiting.done
        except asyncio.CancelledError:
            if not waiting.sent:  # not on the wire yet: it never will be
                self._waiting.remove(waiting)
            raise

    async def insert_one(self, doc: dict[str, Any]) -> None:
        """Insert one document, as ``insert_one`` would: :class:`~pymongo.errors.DuplicateKeyError`
        when a unique key of it is taken."""
        try:
            await self.insert([doc])
        except BulkWriteError as e:
            refused = (e.details.get("writeErrors") or [{}])[0]
            if refused.get("code") == DUPLICATE_KEY:
                raise DuplicateKeyError(refused.get("errmsg", "duplicate key"), DUPLICATE_KEY, refused) from None
            raise

    def _next(self) -> None:
        if self._waiting:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await self._send(self._take())
        finally:
            for waiting in self._waiting:  # only if this task itself was cancelled (the loop is closing)
                if not waiting.done.done():
                    waiting.done.cancel()
            self._waiting.clear()
            self._busy = False
            self._drainer = None

    def _take(self) -> list[_Waiting]:
        group = [self._waiting.popleft()]
        count = len(group[0].docs)
        while self._waiting and count + len(self._waiting[0].docs) <= self._max_docs:
            count += len(self._waiting[0].docs)
            group.append(self._waiting.popleft())
        for waiting in group:
            waiting.sent = True
        return group

    async def _send(self, group: list[_Waiting]) -> None:
        self.sizes[len(group)] += 1
        try:
            await self._collection.insert_many([doc for waiting in group for doc in waiting.docs], ordered=True)
        except BulkWriteError as e:
            self._answer_refusal(group, e)
        except asyncio.CancelledError as e:  # the loop is closing
            for waiting in group:
                _settle(waiting, e)
            raise
        except Exception as e:  # nothing says what landed: each caller learns it as from its own insert
            for waiting in group:
                _settle(waiting, e)
        else:
            for waiting in group:
                _settle(waiting, None)

    def _answer_refusal(self, group: list[_Waiting], error: BulkWriteError) -> None:
        """Each caller's part of an ordered insert that stopped at one refused document."""
        refused = error.details.get("writeErrors") or []
        if not refused:
            for waiting in group:
                _settle(waiting, error)
            return
        at = refused[0]["index"]
        start = 0
        again: list[_Waiting] = []
        for waiting in group:
            end = start + len(waiting.docs)
            if end <= at:
                _settle(waiting, None)
            elif start <= at:
                _settle(waiting, BulkWriteError({**error.details, "writeErrors": [{**refused[0], "index": at - start}], "nInserted": at - start}))
            else:
                waiting.sent = False  # never attempted: first in the next command
                again.append(waiting)
            start = end
        self._waiting.extendleft(reversed([w for w in again if not w.done.done()]))


def _settle(waiting: _Waiting, outcome: BaseException | None) -> None:
    if waiting.done.done():  # its caller was cancelled while its documents were on the wire
        return
    if outcome is None:
        waiting.done.set_result(None)
    elif isinstance(outcome, asyncio.CancelledError):
        waiting.done.cancel()
    else:
        waiting.done.set_exception(outcome)
