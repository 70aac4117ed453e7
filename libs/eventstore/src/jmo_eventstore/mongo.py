"""The event log in MongoDB (or FerretDB), through PyMongo's async API.

Collections (``<name>`` is the store's name, one per service):

* ``<name>_commits``: one document per decision (see :mod:`jmo_eventstore.commits`). Inserting it
  is the only write of an append, so an append is atomic without multi-document transactions.
  ``_id`` = ``<stream>@<expected version>`` is the concurrency check; a unique index on
  ``cause_id`` makes appends idempotent per causing message.
* ``<name>_sequence``: the global order, as batches ``{_id: first position, end, commits: [{commit, position, count}], applied}``.
  A sequencer takes commits still marked ``pending``, orders them (per stream by version), and
  inserts the next batch; the unique ``_id`` fences concurrent sequencers, and the batch fixes
  which commit gets which position, so anyone may finish applying it. Readers read up to the end
  of the last *applied* batch. A commit that was slow to be written simply lands in a later batch:
  positions never point at something not yet committed, so there are no gaps to skip.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from jmo_contracts import Envelope

from .codec import PayloadCodec, PlainCodec
from .commits import Doc, build_commit, commit_id, recorded_events, result_of, verify_chain
from .model import AppendResult, ConcurrencyConflict, IntegrityProblem, RecordedEvent

HEAD_CACHE_SIZE = 10_000
#: FerretDB v1 (SQLite) stops answering on a bulk write of 100 or more operations; stay below.
WRITE_CHUNK = 50
_HEAD_FIELDS = ("_id", "to_version", "hash")


class MongoEventStore:
    """Event store on a MongoDB-protocol database. Call :meth:`ensure_indexes` once at start-up."""

    def __init__(self, database: AsyncDatabase, name: str = "events", codec: PayloadCodec | None = None) -> None:
        self.codec = codec or PlainCodec()
        self.commits: AsyncCollection = database[f"{name}_commits"]
        self.sequence_log: AsyncCollection = database[f"{name}_sequence"]
        # Last known head per stream. Safe to trust: a stale entry makes the insert collide on _id.
        self._heads: OrderedDict[str, Doc] = OrderedDict()

    async def ensure_indexes(self) -> None:
        await self.commits.create_index([("cause_id", ASCENDING)], unique=True, name="cause_unique")
        await self.commits.create_index([("stream_id", ASCENDING), ("to_version", ASCENDING)], name="stream_version")
        await self.commits.create_index([("pending", ASCENDING)], sparse=True, name="pending")
        await self.commits.create_index([("last_position", ASCENDING)], sparse=True, name="last_position")

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
        doc = build_commit(stream_id=stream_id, expected_version=expected_version, head=head, events=events, cause_id=cause_id, codec=self.codec)
        try:
            await self.commits.insert_one({**doc, "pending": True})
        except DuplicateKeyError:
            self._heads.pop(stream_id, None)
            if (done := await self.find_cause(cause_id)) is not None:
                return done
            raise ConcurrencyConflict(stream_id, expected_version) from None
        self._remember_head(stream_id, doc)
        return result_of(doc, already=False)

    async def find_cause(self, cause_id: str) -> AppendResult | None:
        doc = await self.commits.find_one({"cause_id": cause_id}, {"pending": 0})
        return None if doc is None else result_of(doc, already=True)

    # -- reading one stream ----------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        out: list[RecordedEvent] = []
        last: Doc | None = None
        async for doc in self._walk(stream_id):
            if doc["to_version"] >= from_version:
                out.extend(recorded_events(doc, self.codec, from_version=from_version))
            last = doc
        if last is not None:
            self._remember_head(stream_id, last)
        return out

    async def _walk(self, stream_id: str, start: Doc | None = None) -> AsyncIterator[Doc]:
        """A stream's commits in order, each looked up by ``_id`` (``<stream>@<version before it>``).

        Primary-key lookups are the one query every MongoDB-protocol server answers from an index
        (FerretDB v1 scans its whole table for anything else), and streams are short.
        """
        version = start["to_version"] if start else 0
        while (doc := await self.commits.find_one({"_id": commit_id(stream_id, version)}, {"pending": 0})) is not None:
            yield doc
            version = doc["to_version"]

    async def stream_ids(self) -> list[str]:
        return sorted(await self.commits.distinct("stream_id"))

    # -- the global order ------------------------------------------------------------------

    async def sequence(self, max_commits: int = 1000) -> int:
        """Give positions to up to ``max_commits`` committed-but-unsequenced commits."""
        last = await self.sequence_log.find_one(sort=[("_id", DESCENDING)])
        if last is not None and not last["applied"]:
            await self._apply(last)
        next_position = last["end"] + 1 if last else 1
        pending = await self.commits.find({"pending": True}, {"events": 0}).sort([("recorded_at", ASCENDING), ("_id", ASCENDING)]).to_list(max_commits)
        ordered = await self._orderable(pending)
        if not ordered:
            return 0
        assignments: list[dict[str, Any]] = []
        for doc in ordered:
            assignments.append({"commit": doc["_id"], "position": next_position, "count": doc["event_count"]})
            next_position += doc["event_count"]
        batch = {"_id": assignments[0]["position"], "end": next_position - 1, "commits": assignments, "applied": False}
        try:
            await self.sequence_log.insert_one(batch)
        except DuplicateKeyError:
            return 0  # another sequencer placed this range; its batch will be applied
        await self._apply(batch)
        return len(ordered)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        watermark = await self._watermark()
        if watermark <= after_position:
            return []
        out: list[RecordedEvent] = []
        cursor = self.commits.find({"last_position": {"$gt": after_position}, "position": {"$lte": watermark}}).sort("last_position", ASCENDING).limit(limit)
        async for doc in cursor:
            out.extend(recorded_events(doc, self.codec, after_position=after_position))
            if len(out) >= limit:
                break
        return out[:limit]

    async def _watermark(self) -> int:
        last = await self.sequence_log.find_one(sort=[("_id", DESCENDING)], projection={"commits": 0})
        if last is None:
            return 0
        return last["end"] if last["applied"] else last["_id"] - 1

    async def _apply(self, batch: Doc) -> None:
        updates = [
            UpdateOne({"_id": a["commit"], "pending": True}, {"$set": {"position": a["position"], "last_position": a["position"] + a["count"] - 1}, "$unset": {"pending": ""}})
            for a in batch["commits"]
        ]
        for i in range(0, len(updates), WRITE_CHUNK):
            await self.commits.bulk_write(updates[i : i + WRITE_CHUNK], ordered=False)
        await self.sequence_log.update_one({"_id": batch["_id"]}, {"$set": {"applied": True}})

    async def _orderable(self, pending: list[Doc]) -> list[Doc]:
        """Pending commits in an order that keeps each stream's versions ascending.

        A commit whose predecessor is still unsequenced but not in this batch (possible when the
        batch was cut by the limit) waits, with its successors, for a later round.
        """
        in_batch = {d["_id"] for d in pending}
        outside = {d["prev_commit"] for d in pending if d["prev_commit"] and d["prev_commit"] not in in_batch}
        blocked: set[str] = set()
        if outside:
            blocked = {d["_id"] async for d in self.commits.find({"_id": {"$in": sorted(outside)}, "pending": True}, {"_id": 1})}
        by_stream: dict[str, list[Doc]] = {}
        for doc in pending:
            by_stream.setdefault(doc["stream_id"], []).append(doc)
        accepted: dict[str, list[Doc]] = {}
        for stream, docs in by_stream.items():
            docs.sort(key=lambda d: d["from_version"])
            chain: list[Doc] = []
            for doc in docs:
                linked = doc["prev_commit"] == chain[-1]["_id"] if chain else doc["prev_commit"] not in blocked and doc["prev_commit"] not in in_batch
                if not linked:
                    break
                chain.append(doc)
            accepted[stream] = chain
        # keep the arrival order across streams, but each stream's slots get its commits in version order
        slots = [d for d in pending if any(d is c for c in accepted[d["stream_id"]])]
        queues = {s: iter(c) for s, c in accepted.items()}
        return [next(queues[d["stream_id"]]) for d in slots]

    # -- integrity -------------------------------------------------------------------------

    async def verify(self) -> list[IntegrityProblem]:
        problems: list[IntegrityProblem] = []
        current: str | None = None
        docs: list[Doc] = []
        seen: dict[str, tuple[int | None, int]] = {}
        async for doc in self.commits.find({}).sort([("stream_id", ASCENDING), ("to_version", ASCENDING)]):
            seen[doc["_id"]] = (doc.get("position"), doc["event_count"])
            if doc["stream_id"] != current:
                if current is not None:
                    problems.extend(verify_chain(current, docs))
                current, docs = doc["stream_id"], []
            docs.append(doc)
        if current is not None:
            problems.extend(verify_chain(current, docs))
        async for batch in self.sequence_log.find({"applied": True}).sort("_id", ASCENDING):
            for a in batch["commits"]:
                cid, pos = a["commit"], a["position"]
                stream = cid.rsplit("@", 1)[0]
                if cid not in seen:
                    problems.append(IntegrityProblem(stream, cid, "sequenced commit is missing"))
                elif seen[cid][0] != pos:
                    problems.append(IntegrityProblem(stream, cid, f"position {seen[cid][0]} differs from the sequence log ({pos})"))
        return problems

    # -- helpers ---------------------------------------------------------------------------

    async def _head(self, stream_id: str, expected_version: int) -> Doc | None:
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

