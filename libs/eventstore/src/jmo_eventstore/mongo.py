"""The event log in MongoDB (or FerretDB), through PyMongo's async API. Insert-only.

Collections (``<name>`` is the store's name, one per service):

* ``<name>_commits``: one document per decision (see :mod:`jmo_eventstore.commits`), never
  changed once written. Inserting it is the only write of an append, so an append is atomic
  without multi-document transactions. ``_id`` = ``<stream>@<expected version>`` is the
  concurrency check; a unique index on ``cause_id`` makes appends idempotent per causing message.
* ``<name>_sequence``: the global order, as batches ``{_id: first position (zero-padded), start,
  end, commits: [{commit, position, count}]}``. A sequencer orders commits not yet sequenced (each stream by
  version) and inserts the next batch; the unique ``_id`` fences concurrent sequencers. Positions
  are only ever given to commits already written, so a commit that was slow to be written lands
  in a later batch and no reader can skip it.

How a sequencer learns of new commits: from the appends of its own store instance, plus each
one's predecessors (fetched by ``_id``) so a stream's order holds across instances; and by a
reconciliation scan at start-up and every ``reconcile_seconds`` for commits of other or crashed
instances. Nothing here updates or deletes a document, and the hot path is inserts and look-ups
by ``_id``: FerretDB v1 (SQLite) answers only a plain ``{_id: <string>}`` filter from an index
(with the patch in ``jmo_devstack.install``) and scans the whole table for anything else.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from jmo_contracts import Envelope

from .codec import PayloadCodec, PlainCodec
from .commits import Doc, build_commit, commit_id, new_items, recorded_events, result_of, stored_items, verify_chain
from .model import AppendResult, ConcurrencyConflict, IntegrityProblem, RecordedEvent

# Cursors are always bounded by limit() and read to the end, never abandoned: FerretDB v1 keeps
# one of a database's 100 pooled SQLite connections per open cursor, and blocks every later
# request on that database once they are all taken.
HEAD_CACHE_SIZE = 10_000
_HEAD_FIELDS = ("_id", "to_version", "hash")
FETCH_CONCURRENCY = 16
_ORDER_FIELDS = {"_id": 1, "stream_id": 1, "from_version": 1, "prev_commit": 1, "event_count": 1, "recorded_at": 1}


def batch_id(start: int) -> str:
    """A sequence batch's ``_id``: its first position, zero-padded so ids sort like numbers and
    look-ups use the primary key (FerretDB pushes down only string or ObjectId ``_id`` filters)."""
    return f"{start:015d}"


class MongoEventStore:
    """Event store on a MongoDB-protocol database. Call :meth:`ensure_indexes` once at start-up."""

    def __init__(self, database: AsyncDatabase, name: str = "events", codec: PayloadCodec | None = None, *, reconcile_seconds: float = 30.0) -> None:
        self.codec = codec or PlainCodec()
        self.reconcile_seconds = reconcile_seconds
        self.commits: AsyncCollection = database[f"{name}_commits"]
        self.sequence_log: AsyncCollection = database[f"{name}_sequence"]
        # Last known head per stream. Safe to trust: a stale entry makes the insert collide on _id.
        self._heads: OrderedDict[str, Doc] = OrderedDict()
        # What this instance knows of the sequence log, and the commits it wrote but has not sequenced.
        self._starts: list[int] = []
        self._batches: dict[int, list[Doc]] = {}
        self._sequenced: set[str] = set()
        self._next_position = 1
        self._unsequenced: dict[str, Doc] = {}
        self._reconciled_at: float | None = None

    async def ensure_indexes(self) -> None:
        await self.commits.create_index([("cause_id", ASCENDING)], unique=True, name="cause_unique")

    # -- writing ---------------------------------------------------------------------------

    async def append(self, stream_id: str, expected_version: int, events: Sequence[Envelope], *, cause_id: str) -> AppendResult:
        if not events:
            raise ValueError("nothing to append")
        head = await self._head(stream_id, expected_version)
        actual = head["to_version"] if head else 0
        if actual != expected_version:
            if (done := await self.find_cause(cause_id)) is not None:
                return done
            raise ConcurrencyConflict(stream_id, expected_version, actual)
        await self.codec.prepare(new_items(events), writing=True)
        doc = build_commit(stream_id=stream_id, expected_version=expected_version, head=head, events=events, cause_id=cause_id, codec=self.codec)
        try:
            await self.commits.insert_one(doc)
        except DuplicateKeyError:
            self._heads.pop(stream_id, None)
            if (done := await self.find_cause(cause_id)) is not None:
                return done
            raise ConcurrencyConflict(stream_id, expected_version) from None
        self._remember_head(stream_id, doc)
        self._unsequenced[doc["_id"]] = {k: doc[k] for k in _ORDER_FIELDS}
        return result_of(doc, already=False)

    async def find_cause(self, cause_id: str) -> AppendResult | None:
        doc = await self.commits.find_one({"cause_id": cause_id})
        return None if doc is None else result_of(doc, already=True)

    # -- reading one stream ----------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        docs = [doc async for doc in self._walk(stream_id)]
        if docs:
            self._remember_head(stream_id, docs[-1])
        wanted = [doc for doc in docs if doc["to_version"] >= from_version]
        await self.codec.prepare(stored_items(wanted), writing=False)
        out: list[RecordedEvent] = []
        for doc in wanted:
            out.extend(recorded_events(doc, self.codec, from_version=from_version))
        return out

    async def _walk(self, stream_id: str, start: Doc | None = None) -> AsyncIterator[Doc]:
        """A stream's commits in order, each found by its ``_id`` (``<stream>@<version before it>``):
        primary-key look-ups, which stay fast however large the log grows. Streams are short."""
        version = start["to_version"] if start else 0
        while (doc := await self.commits.find_one({"_id": commit_id(stream_id, version)})) is not None:
            yield doc
            version = doc["to_version"]

    async def stream_ids(self) -> list[str]:
        return sorted(await self.commits.distinct("stream_id"))

    # -- the global order ------------------------------------------------------------------

    async def sequence(self, max_commits: int = 1000, *, reconcile: bool = False) -> int:
        """Give positions to up to ``max_commits`` written-but-unsequenced commits; returns how many."""
        await self._catch_up()
        due = self._reconciled_at is None or time.monotonic() - self._reconciled_at >= self.reconcile_seconds
        if reconcile or due:
            await self._reconcile()
        await self._add_predecessors()
        # no await from here to the insert: what we order is what we know to be unsequenced now
        self._forget_sequenced()
        ordered = self._in_order(dict(self._unsequenced))[:max_commits]
        if not ordered:
            return 0
        start = position = self._next_position
        assignments = []
        for doc in ordered:
            assignments.append({"commit": doc["_id"], "position": position, "count": doc["event_count"]})
            position += doc["event_count"]
        try:
            await self.sequence_log.insert_one({"_id": batch_id(start), "start": start, "end": position - 1, "commits": assignments})
        except DuplicateKeyError:
            await self._catch_up()  # another sequencer placed this range first
            self._forget_sequenced()
            return 0
        self._learn(start, assignments)
        self._forget_sequenced()
        return len(ordered)

    def _forget_sequenced(self) -> None:
        # in place: appends made while this sequencer awaited have added hints to the same dict
        for cid in [c for c in self._unsequenced if c in self._sequenced]:
            del self._unsequenced[cid]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        await self._catch_up()
        wanted: list[Doc] = []
        events = 0
        for start in self._starts[max(bisect.bisect_right(self._starts, after_position) - 1, 0) :]:
            for a in self._batches[start]:
                if events >= limit:
                    break
                if a["position"] + a["count"] - 1 > after_position:
                    wanted.append(a)
                    events += a["count"]
            if events >= limit:
                break
        docs = await self._fetch([a["commit"] for a in wanted])
        await self.codec.prepare(stored_items(docs.values()), writing=False)
        out: list[RecordedEvent] = []
        for a in wanted:
            doc = docs.get(a["commit"])
            if doc is None:
                raise LookupError(f"sequenced commit {a['commit']} is missing from the log (run verify)")
            out.extend(recorded_events({**doc, "position": a["position"]}, self.codec, after_position=after_position))
        return out[:limit]

    async def _catch_up(self) -> None:
        """Read sequence batches written since we last looked (each found by its first position)."""
        while (batch := await self.sequence_log.find_one({"_id": batch_id(self._next_position)})) is not None:
            self._learn(batch["start"], batch["commits"])

    def _learn(self, start: int, assignments: list[Doc]) -> None:
        """Record one batch; idempotent, since a concurrent read on this instance may learn it first."""
        if start in self._batches:
            return
        bisect.insort(self._starts, start)
        self._batches[start] = assignments
        self._sequenced.update(a["commit"] for a in assignments)
        last = assignments[-1]
        self._next_position = max(self._next_position, last["position"] + last["count"])

    async def _reconcile(self) -> None:
        """Find commits no sequencer has placed (other instances, crashed writers): one scan."""
        async for doc in self.commits.find({}, _ORDER_FIELDS):
            if doc["_id"] not in self._sequenced:
                self._unsequenced.setdefault(doc["_id"], doc)
        self._reconciled_at = time.monotonic()

    async def _add_predecessors(self) -> None:
        """Bring in unsequenced predecessors (written by other instances) so streams stay in order."""
        pending = self._unsequenced

        def missing(docs: Sequence[Doc]) -> set[str]:
            return {d["prev_commit"] for d in docs if d["prev_commit"] and d["prev_commit"] not in self._sequenced and d["prev_commit"] not in pending}

        wanted = missing(list(pending.values()))
        while wanted:
            found = await self._fetch(sorted(wanted), projection=_ORDER_FIELDS)
            pending.update(found)
            wanted = missing(list(found.values()))

    def _in_order(self, candidates: dict[str, Doc]) -> list[Doc]:
        """Candidates whose predecessors are sequenced or come first: arrival order across streams,
        version order within each stream."""
        by_stream: dict[str, list[Doc]] = {}
        for doc in candidates.values():
            by_stream.setdefault(doc["stream_id"], []).append(doc)
        accepted: dict[str, list[Doc]] = {}
        for stream, docs in by_stream.items():
            docs.sort(key=lambda d: d["from_version"])
            chain: list[Doc] = []
            for doc in docs:
                expected = chain[-1]["_id"] if chain else None
                linked = doc["prev_commit"] == expected if chain else doc["prev_commit"] is None or doc["prev_commit"] in self._sequenced
                if not linked:
                    break
                chain.append(doc)
            accepted[stream] = chain
        chosen = {d["_id"] for chain in accepted.values() for d in chain}
        slots = sorted((d for d in candidates.values() if d["_id"] in chosen), key=lambda d: (d["recorded_at"], d["_id"]))
        queues = {s: iter(c) for s, c in accepted.items()}
        return [next(queues[d["stream_id"]]) for d in slots]

    async def _fetch(self, ids: Sequence[str], projection: dict[str, int] | None = None) -> dict[str, Doc]:
        """Documents by ``_id``, as concurrent primary-key look-ups (FerretDB answers no other
        query from an index, ``$in`` included)."""
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(cid: str) -> Doc | None:
            async with gate:
                return await self.commits.find_one({"_id": cid}, projection)

        return {d["_id"]: d for d in await asyncio.gather(*(one(c) for c in ids)) if d is not None}

    # -- integrity -------------------------------------------------------------------------

    async def verify(self) -> list[IntegrityProblem]:
        problems: list[IntegrityProblem] = []
        by_stream: dict[str, list[Doc]] = {}
        async for doc in self.commits.find({}):
            by_stream.setdefault(doc["stream_id"], []).append(doc)
        for stream in sorted(by_stream):
            problems.extend(verify_chain(stream, sorted(by_stream[stream], key=lambda d: d["to_version"])))
        present = {d["_id"] for docs in by_stream.values() for d in docs}
        expected_start = 1
        async for batch in self.sequence_log.find({}).sort("_id", ASCENDING):
            if batch["_id"] != batch_id(expected_start) or batch["start"] != expected_start:
                problems.append(IntegrityProblem("<sequence>", None, f"sequence batch {batch['_id']} where {expected_start} was expected"))
            for a in batch["commits"]:
                if a["commit"] not in present:
                    problems.append(IntegrityProblem(a["commit"].rsplit("@", 1)[0], a["commit"], "sequenced commit is missing"))
            expected_start = batch["end"] + 1
        return problems

    # -- helpers ---------------------------------------------------------------------------

    async def _head(self, stream_id: str, expected_version: int) -> Doc | None:
        if expected_version == 0:
            return None  # a new stream: if it exists after all, inserting <stream>@0 collides
        cached = self._heads.get(stream_id)
        if cached is not None and cached["to_version"] == expected_version:
            return cached  # trusted: if someone appended since, our insert collides on _id
        head = cached if cached is not None and cached["to_version"] < expected_version else None
        async for doc in self._walk(stream_id, head):
            head = doc
        if head is not None:
            self._remember_head(stream_id, head)
        return head

    def _remember_head(self, stream_id: str, doc: Doc) -> None:
        self._heads[stream_id] = {k: doc[k] for k in _HEAD_FIELDS}
        self._heads.move_to_end(stream_id)
        if len(self._heads) > HEAD_CACHE_SIZE:
            self._heads.popitem(last=False)

