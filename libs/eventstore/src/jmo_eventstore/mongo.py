"""The event log in MongoDB (or FerretDB), through PyMongo's async API.

Collections (``<name>`` is the store's name, one per service):

* ``<name>_commits``: one document per decision (see :mod:`jmo_eventstore.commits`), never
  changed once written, so an append is atomic without multi-document transactions.
  ``_id`` = ``<stream>@<expected version>`` is the optimistic-concurrency check. A unique index
  on ``cause_id`` keeps one commit per causing message across the whole log.
  Beside the commits it holds this instance's **outbox slots**: ``{_id: "~outbox~<instance>~<seq>",
  commit, at}``, one per commit whose events may not be on Kafka yet, inserted in the *same*
  ordered ``insert`` command as the commit and before it (so a commit never exists without its
  slot, and an append stays one round trip). The commit names its slot (``outbox_slot``, outside
  the hash). Slots are deleted once Kafka acknowledged the commit's events (:meth:`MongoEventStore.settle`).
  And a decision's **side documents** (``append(..., beside=...)``): ``{_id: "~beside~<key>",
  cause_id: <its _id>, ...fields}``, small records a service keeps with the decision that made them
  (identity: the sealed OTP code its ``OtpIssued`` issues), inserted in that same command, first, so
  they are durable no later than the commit; read (:meth:`MongoEventStore.find_beside`) and deleted
  (:meth:`MongoEventStore.drop_beside`) by ``_id``. One with an ``expires_at`` is removed after it by
  MongoDB's TTL index ``beside_ttl`` (partial: commits and slots are not in it; none on FerretDB v1).
  Slots and side documents carry ``cause_id`` = their own ``_id`` (the unique index treats a
  missing field as null, so two without one would collide) and no ``stream_id``: whatever reads
  the commits (verify, sequence, stream ids, the recovery walk) tells commits by ``stream_id``.
* ``<name>_relays``: one small document per store instance (process): ``{_id: <instance>,
  heartbeat, next}``. ``next`` is the instance's first slot that may still be unpublished, so
  recovering the work of an instance that died reads its slots by ``_id`` from ``next`` on, and
  nothing else. A live instance refreshes ``heartbeat`` every few seconds.
* ``<name>_sequence``: the global order (``position``), built only by batch tools (``sequence``,
  then ``read_all``: ``jmo audit``). Nothing on a service's hot path or timers reads or writes it.

What a command costs, whatever the size of the log:

* ``read_stream(..., cached=True)`` of a stream this instance has seen: no round trip. Each
  instance keeps the commits of the streams it recently touched (bounded, least recently used).
  A stale entry is harmless: the decision made on it is appended at a version that is taken, the
  insert collides on ``_id``, and the store reads forward from what it knew. An uncached stream
  is read commit by commit by ``_id``.
* ``append``: one ``insert`` command (side documents + slot + commit), or less: appends that
  arrive while one is in flight go together in the next command (group commit,
  :mod:`jmo_eventstore.grouped`). A redelivered cause is recognised in the
  stream's own commits (which the instance holds); a cause already used by another stream makes
  the insert collide on the ``cause_id`` index, and only then is it looked up.
* the relay publishes what this instance appended straight from memory; settling (every second or
  so, for everything published since) is one update of the instance's document and one ``delete``
  command whose statements are by ``_id``.
* every few seconds: the heartbeat (an update by ``_id``) and a look for dead instances (the small
  ``<name>_relays`` collection; an index on ``heartbeat`` on MongoDB). Usually none; for one that
  died, its slots by ``_id`` from its watermark on, and (once, to drop it) by ``_id`` below it, for
  settled slots it died before deleting.

FerretDB v1 (SQLite) answers only a plain ``{_id: <string>}`` filter from an index (with the patch
in ``jmo_devstack.install``) and scans the collection for anything else: the only query above not
by ``_id`` reads ``<name>_relays``, one document per running instance. Full scans of the log
happen only in batch tools: ``sequence`` (reconciliation), ``verify``, ``stream_ids``.
"""

from __future__ import annotations

import asyncio
import bisect
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, OperationFailure
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from jmo_contracts import Envelope

from .codec import PayloadCodec, PlainCodec
from .commits import RESERVED_BESIDE_FIELDS, Doc, appended_events, beside_id, build_commit, chain_link, commit_id, new_items, recorded_events, result_of, side_documents, stored_items, verify_chain
from .grouped import GroupedInserts
from .model import AppendResult, ConcurrencyConflict, IntegrityProblem, PendingCommit, RecordedEvent

# Cursors are always bounded by limit() and read to the end, never abandoned: FerretDB v1 keeps
# one of a database's 100 pooled SQLite connections per open cursor, and blocks every later
# request on that database once they are all taken.
STREAM_CACHE_COMMITS = 5_000
#: Appended commits kept in memory, with their events, for this instance's relay; beyond that only
#: their ids are kept and the relay reads them back.
APPENDED_QUEUE_LIMIT = 2_000
#: Appends in flight at once per instance. A dead instance's slots are walked until this many
#: ``_id`` look-ups in a row find nothing: gaps come only from appends that were in flight.
MAX_IN_FLIGHT = 64
SLOT_PREFIX = "~outbox~"
#: MongoDB's answer to an option it does not implement (FerretDB v1 to a TTL index).
NOT_IMPLEMENTED = 238
#: Statements per bulk command (FerretDB v1 mishandles bulk writes of 100 or more), and ids per
#: :func:`delete_by_id` command, lowest first (:meth:`MongoEventStore._left_below` counts on it).
BULK_CHUNK = 90
#: Commit ids per query of the batch tools' page fetches (`_id: {$in: [...]}`).
FETCH_IN = 500
#: Events ``read_all`` fetches ahead of its reader, in one ``_id: {$in}`` query (at most
#: :data:`FETCH_IN` commits to a query): a forward reader pays a round trip per window, not per page.
READ_AHEAD_EVENTS = 2_000
#: Commits per batch of ``verify``'s scan.
VERIFY_BATCH = 1000
_ORDER_FIELDS = {"_id": 1, "stream_id": 1, "from_version": 1, "prev_commit": 1, "event_count": 1, "recorded_at": 1}


async def delete_by_id(collection: AsyncCollection, ids: Sequence[Any]) -> None:
    """Delete the documents of ``collection`` with these ``_id``: one ``_id: {$in: [...]}`` delete
    per :data:`BULK_CHUNK` of them, in order (the ``_id`` index serves it on MongoDB and on the
    embedded FerretDB with its JMO patch; a third of the server's CPU per document of one
    statement per ``_id``). Unlike a bulk of single deletes it is not retried by the driver: every
    caller deletes again what a failed call may have left (they are all idempotent)."""
    for i in range(0, len(ids), BULK_CHUNK):
        await collection.delete_many({"_id": {"$in": list(ids[i : i + BULK_CHUNK])}})


async def ensure_ttl_index(collection: AsyncCollection, field: str, *, name: str, partial: Mapping[str, Any] | None = None) -> bool:
    """A TTL index on ``field`` (a datetime): MongoDB removes each document once that time has
    passed (within a minute or so). ``partial``: only the documents this filter matches are in it.
    False where the server has no TTL indexes (FerretDB v1: there such documents stay until
    deleted)."""
    options: dict[str, Any] = {"partialFilterExpression": dict(partial)} if partial is not None else {}
    try:
        await collection.create_index([(field, ASCENDING)], expireAfterSeconds=0, name=name, **options)
    except OperationFailure as e:
        if e.code != NOT_IMPLEMENTED:
            raise
        return False
    return True


def slot_id(instance: str, seq: int) -> str:
    """The ``_id`` of an instance's ``seq``-th outbox slot (beside the commits)."""
    return f"{SLOT_PREFIX}{instance}~{seq:012d}"


def batch_id(start: int) -> str:
    """A sequence batch's ``_id``: its first position, zero-padded so ids sort like numbers and
    look-ups use the primary key (FerretDB pushes down only string or ObjectId ``_id`` filters)."""
    return f"{start:015d}"


class MongoEventStore:
    """Event store on a MongoDB-protocol database. Call :meth:`ensure_indexes` once at start-up.

    ``cache_commits`` bounds the per-instance stream cache (commit documents held);
    ``queue_limit`` bounds the commits waiting in memory, with their events, for this instance's
    relay (beyond it only their ids wait, and the relay reads them back by ``_id``).
    """

    def __init__(
        self,
        database: AsyncDatabase,
        name: str = "events",
        codec: PayloadCodec | None = None,
        *,
        cache_commits: int = STREAM_CACHE_COMMITS,
        queue_limit: int = APPENDED_QUEUE_LIMIT,
    ) -> None:
        self.codec = codec or PlainCodec()
        self.commits: AsyncCollection = database[f"{name}_commits"]
        self.relays: AsyncCollection = database[f"{name}_relays"]
        self.sequence_log: AsyncCollection = database[f"{name}_sequence"]
        #: This store instance, as the owner of its outbox slots.
        self.instance = uuid.uuid4().hex[:16]
        #: Set after every append of this instance: wakes its relay.
        self.appended = asyncio.Event()
        self._streams: OrderedDict[str, list[Doc]] = OrderedDict()
        self._cached = 0
        self._cache_limit = cache_commits
        self._queue: deque[PendingCommit | str] = deque()
        self._queue_limit = queue_limit
        self._gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        #: The appends' inserts: those that arrive while one is in flight go together in the next.
        self.inserts = GroupedInserts(self.commits, max_docs=BULK_CHUNK)
        self._registered = False
        self._next_seq = 0
        self._open: dict[int, str | None] = {}  # seq -> commit id: slots not settled yet (None: still being written)
        self._slot_of: dict[str, int] = {}  # commit id -> seq, for this instance's unsettled commits
        self._deletable: set[int] = set()  # settled (or void) slots, deleted once below the watermark
        self._watermark = 0
        self._unknown: dict[int, datetime] = {}  # slots whose insert failed without saying whether it landed
        self._recovered: dict[str, tuple[str, str]] = {}  # commit id -> (dead instance, slot id)
        self._recovering: dict[str, dict[str, Any]] = {}  # dead instance -> walk state
        # Batch tools only (sequence / read_all): what this process has read of the sequence log.
        self._starts: list[int] = []
        self._batches: dict[int, list[Doc]] = {}
        self._sequenced: set[str] = set()
        self._next_position = 1
        self._unsequenced: dict[str, Doc] = {}
        self._ahead: dict[str, Doc] = {}  # commits read_all fetched ahead of its reader

    async def ensure_indexes(self) -> bool:
        """The indexes every query of this store needs on MongoDB (see ``QUERIES`` in the tests),
        and the TTL index that removes side documents past their ``expires_at`` (partial: only
        documents with that field are in it). Returns False where the server has no TTL indexes
        (FerretDB v1: there a side document stays until it is dropped)."""
        await self.commits.create_index([("cause_id", ASCENDING)], unique=True, name="cause_unique")
        await self.relays.create_index([("heartbeat", ASCENDING)], name="relays_heartbeat")
        return await ensure_ttl_index(self.commits, "expires_at", name="beside_ttl", partial={"expires_at": {"$exists": True}})

    # -- writing ---------------------------------------------------------------------------

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[Envelope], *, cause_id: str, cause_digest: str | None = None,
        beside: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> AppendResult:
        """See :class:`~jmo_eventstore.protocol.EventStore`. One ordered ``insert``: the side
        documents, the slot, the commit; shared with the appends of this instance that wait for
        the same round trip (:class:`~jmo_eventstore.grouped.GroupedInserts`). If the commit
        collides (its version taken, or its cause used by another stream) the side documents that
        landed before it are deleted again."""
        if not events:
            raise ValueError("nothing to append")
        side = side_documents(beside)
        known = await self._known(stream_id, expected_version)
        if (done := _cause_in(known, cause_id)) is not None:
            return done
        actual = known[-1]["to_version"] if known else 0
        if actual != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version, actual)
        await self.codec.prepare(new_items(events), writing=True)
        doc = build_commit(stream_id=stream_id, expected_version=expected_version, head=known[-1] if known else None, events=events, cause_id=cause_id, codec=self.codec, cause_digest=cause_digest)
        async with self._gate:
            await self._register()
            seq = self._next_seq
            self._next_seq += 1
            self._open[seq] = None
            slot = slot_id(self.instance, seq)
            doc["outbox_slot"] = slot
            try:
                # ordered: side documents and slot first, so no commit exists without them; in one
                # command with the appends that arrive while another is in flight (GroupedInserts)
                await self.inserts.insert([*side, {"_id": slot, "cause_id": slot, "commit": doc["_id"], "at": datetime.now(UTC)}, doc])
            except BulkWriteError as e:
                if any(err.get("code") != 11000 or err.get("index") != len(side) + 1 for err in e.details.get("writeErrors", [])):
                    self._unknown[seq] = datetime.now(UTC)
                    raise
                # the commit collided; void our slot (no gap in the walk) and settle it with the next
                # batch; the side documents belong to no decision
                await self.commits.replace_one({"_id": slot}, {"cause_id": slot, "void": True}, upsert=True)
                self._open.pop(seq, None)
                self._deletable.add(seq)
                await self._delete([d["_id"] for d in side])  # (should this fail, the TTL index takes them on MongoDB)
                return await self._after_collision(stream_id, expected_version, cause_id)
            except BaseException:
                self._unknown[seq] = datetime.now(UTC)  # did it land? settle finds out (see _resolve_unknown)
                raise
            self._open[seq] = doc["_id"]
            self._slot_of[doc["_id"]] = seq
        self._remember(stream_id, [*known, doc])
        self._enqueue(doc, events)
        return result_of(doc, already=False)

    async def _register(self) -> None:
        if not self._registered:
            try:
                await self.relays.insert_one({"_id": self.instance, "heartbeat": datetime.now(UTC), "next": 0})
            except DuplicateKeyError:
                pass  # a concurrent first append of this instance registered it
            self._registered = True

    async def _known(self, stream_id: str, expected_version: int) -> list[Doc]:
        """The stream's commits as far as this instance knows them, enough to append after
        ``expected_version``: no read when it is cached at that version or presumed new."""
        docs = self._streams.get(stream_id)
        if docs is None:
            if expected_version == 0:
                return []  # presumed new: if it exists after all, inserting <stream>@0 collides
            return await self._load(stream_id)
        if docs[-1]["to_version"] != expected_version:
            return await self._load(stream_id, docs)  # behind, or the caller is: look for newer commits
        self._streams.move_to_end(stream_id)
        return docs

    async def _after_collision(self, stream_id: str, expected_version: int, cause_id: str) -> AppendResult:
        docs = await self._load(stream_id, self._streams.get(stream_id))
        if (done := _cause_in(docs, cause_id)) is not None:
            return done
        actual = docs[-1]["to_version"] if docs else 0
        if actual == expected_version and (done := await self.find_cause(cause_id)) is not None:
            return done  # the version was free: the cause is taken, by a commit of another stream
        raise ConcurrencyConflict(stream_id, expected_version, actual)

    async def find_cause(self, cause_id: str) -> AppendResult | None:
        """The commit of ``cause_id`` anywhere in the log (index ``cause_unique`` on MongoDB; a scan
        on FerretDB, so only on the rare path of a cause reused by another stream, and in tools)."""
        doc = await self.commits.find_one({"cause_id": cause_id})
        return None if doc is None else result_of(doc, already=True)

    # -- side documents ---------------------------------------------------------------------

    async def find_beside(self, key: str) -> dict[str, Any] | None:
        """The fields of side document ``key`` (by ``_id``), or None if it is not (or no longer) there."""
        doc = await self.commits.find_one({"_id": beside_id(key)})
        return None if doc is None else {k: v for k, v in doc.items() if k not in RESERVED_BESIDE_FIELDS}

    async def drop_beside(self, keys: Sequence[str]) -> None:
        """Delete these side documents (:func:`delete_by_id`)."""
        await self._delete([beside_id(k) for k in keys])

    # -- reading one stream ----------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1, *, cached: bool = False, presume_new: bool = False) -> list[RecordedEvent]:
        """The stream's events from ``from_version``. ``cached``: as this instance last saw it (a
        stale view is found out by the append after it). ``presume_new`` (with ``cached``): a
        stream this instance has not seen is taken as empty without a read, for a message that
        starts one; if it exists after all, appending its first commit collides and reloads it."""
        docs = self._streams.get(stream_id)
        if docs is None and cached and presume_new:
            return []
        if docs is None or not cached:
            docs = await self._load(stream_id, docs)
        else:
            self._streams.move_to_end(stream_id)
        wanted = [doc for doc in docs if doc["to_version"] >= from_version]
        await self.codec.prepare(stored_items(wanted), writing=False)
        out: list[RecordedEvent] = []
        for doc in wanted:
            out.extend(recorded_events(doc, self.codec, from_version=from_version))
        return out

    async def _load(self, stream_id: str, known: list[Doc] | None = None) -> list[Doc]:
        """``known`` (a prefix of the stream) extended by the commits after it, each found by its
        ``_id`` (``<stream>@<version before it>``): primary-key look-ups, fast however large the
        log grows. Streams are short."""
        docs = list(known or [])
        version = docs[-1]["to_version"] if docs else 0
        while (doc := await self.commits.find_one({"_id": commit_id(stream_id, version)})) is not None:
            docs.append(doc)
            version = doc["to_version"]
        if docs:
            self._remember(stream_id, docs)
        return docs

    def _remember(self, stream_id: str, docs: list[Doc]) -> None:
        old = self._streams.pop(stream_id, None)
        self._cached += len(docs) - (len(old) if old else 0)
        self._streams[stream_id] = docs
        while self._cached > self._cache_limit and len(self._streams) > 1:
            _, evicted = self._streams.popitem(last=False)
            self._cached -= len(evicted)

    # -- the outbox: from the log to Kafka -------------------------------------------------

    def _enqueue(self, doc: Doc, events: Sequence[Envelope] | None) -> None:
        if events is not None and len(self._queue) < self._queue_limit:
            self._queue.append(PendingCommit(doc["_id"], doc["stream_id"], doc["prev_commit"], appended_events(doc, events)))
        else:
            self._queue.append(doc["_id"])  # only its id: the relay reads it back
        self.appended.set()

    async def appended_commits(self, limit: int) -> list[PendingCommit]:
        """Commits this instance appended and has not handed out yet, oldest first (no round trip
        unless more were appended than the in-memory queue holds)."""
        out: list[PendingCommit] = []
        read = 0
        while read < len(self._queue) and len(out) < limit:
            item = self._queue[read]
            if isinstance(item, PendingCommit):
                out.append(item)
            elif (doc := await self.commits.find_one({"_id": item})) is not None:
                out.append(await self._pending_of(doc))
            read += 1
        for _ in range(read):  # taken off only now: a read that fails leaves them all queued
            self._queue.popleft()
        return out

    async def settle(self, commits: Sequence[str]) -> None:
        """The events of ``commits`` are on Kafka: their slots may go. Moves this instance's
        watermark (one update by ``_id``), then deletes the slots below it (:func:`delete_by_id`);
        finishes recovered instances."""
        recovered: dict[str, list[str]] = {}
        for commit in commits:
            if (seq := self._slot_of.pop(commit, None)) is not None:
                self._open.pop(seq, None)
                self._deletable.add(seq)
            elif (where := self._recovered.pop(commit, None)) is not None:
                recovered.setdefault(where[0], []).append(where[1])
        await self._resolve_unknown()
        watermark = min(self._open, default=self._next_seq)
        if watermark > self._watermark and self._registered:
            await self.relays.update_one({"_id": self.instance}, {"$set": {"next": watermark}})
            self._watermark = watermark
        below = sorted(seq for seq in self._deletable if seq < self._watermark)
        await self._delete([slot_id(self.instance, seq) for seq in below])
        self._deletable.difference_update(below)
        for dead, slots in recovered.items():
            walk = self._recovering.get(dead)
            if walk is not None:
                walk["open"].difference_update(slots)
                walk["published"].update(slots)
                if not walk["open"]:
                    await self._finish_walk(dead, walk)

    async def _finish_walk(self, dead: str, walk: dict[str, Any]) -> None:
        """Everything a walk of ``dead``'s slots found is on Kafka (or void): move its watermark past
        them, then delete them, and drop the instance once the walk reached its end. In that order:
        slots deleted below a watermark that did not move are a gap, and a later walk that meets
        :data:`MAX_IN_FLIGHT` of them in a row takes it for the end and abandons the slots after it.
        If this fails the walk is forgotten: the dead instance is taken over again once its
        (refreshed) heartbeat is old, and what this walk published is published again."""
        try:
            await self.relays.update_one({"_id": dead}, {"$set": {"next": walk["next"]}})
            await self._delete(sorted(walk["published"] | walk["void"]))
            if walk["finished"]:
                await self._delete(await self._left_below(dead, walk["start"]))
                await self.relays.delete_one({"_id": dead})
        finally:
            self._recovering.pop(dead, None)

    async def _left_below(self, dead: str, watermark: int) -> list[str]:
        """Slots of ``dead`` below its ``watermark``: settled, but it died between moving the
        watermark and deleting them (in that order, see :meth:`settle`). Looked up by ``_id``
        downwards until :data:`BULK_CHUNK` in a row are missing (it deleted them in chunks of that
        size, lowest first), so the cost is what it left plus that many look-ups, once per dead
        instance, whatever the size of the log."""
        left: list[str] = []
        seq, misses = watermark - 1, 0
        while seq >= 0 and misses < BULK_CHUNK:
            if await self.commits.find_one({"_id": slot_id(dead, seq)}, {"_id": 1}) is None:
                misses += 1
            else:
                misses = 0
                left.append(slot_id(dead, seq))
            seq -= 1
        return left

    async def _delete(self, ids: Sequence[str]) -> None:
        await delete_by_id(self.commits, ids)

    async def _resolve_unknown(self) -> None:
        """Appends whose insert failed without an answer: did the slot (and commit) land?"""
        for seq in list(self._unknown):
            slot = await self.commits.find_one({"_id": slot_id(self.instance, seq)})
            doc = None if slot is None or "commit" not in slot else await self.commits.find_one({"_id": slot["commit"]})
            del self._unknown[seq]
            if doc is not None and doc.get("outbox_slot") == slot_id(self.instance, seq):
                self._open[seq] = doc["_id"]
                self._slot_of[doc["_id"]] = seq
                self._enqueue(doc, None)  # it did: publish it
            else:
                if slot is None:
                    await self.commits.replace_one({"_id": slot_id(self.instance, seq)}, {"cause_id": slot_id(self.instance, seq), "void": True}, upsert=True)
                self._open.pop(seq, None)
                self._deletable.add(seq)

    async def heartbeat(self) -> None:
        """Tell other instances this one is alive (its slots are its own relay's to publish)."""
        if self._registered:  # upsert: a recoverer that took this instance for dead may have removed it
            await self.relays.update_one({"_id": self.instance}, {"$set": {"heartbeat": datetime.now(UTC)}, "$setOnInsert": {"next": self._watermark}}, upsert=True)

    async def pending_commits(self, *, older_than: float, limit: int) -> list[PendingCommit]:
        """Commits left unpublished by instances silent for ``older_than`` seconds (dead): their
        slots, read by ``_id`` from the instance's watermark on. Each stream's in version order.
        The dead instance is taken over (its heartbeat refreshed) so that one recoverer walks it."""
        now = datetime.now(UTC)
        silent = await self.relays.find({"heartbeat": {"$lt": now - timedelta(seconds=older_than)}}).limit(20).to_list()
        docs: list[Doc] = []
        for dead in silent:
            if dead["_id"] == self.instance or dead["_id"] in self._recovering or len(docs) >= limit:
                continue
            taken = await self.relays.find_one_and_update({"_id": dead["_id"], "heartbeat": dead["heartbeat"]}, {"$set": {"heartbeat": now}})
            if taken is None:
                continue  # another instance took it over first
            walk: dict[str, Any] = {"open": set(), "published": set(), "void": set(), "finished": False, "start": taken.get("next", 0), "next": taken.get("next", 0)}
            seq, misses = walk["next"], 0
            while misses < MAX_IN_FLIGHT and len(docs) < limit:
                slot = await self.commits.find_one({"_id": slot_id(dead["_id"], seq)})
                seq += 1
                if slot is None:
                    misses += 1
                    continue
                misses = 0
                doc = None if slot.get("void") else await self.commits.find_one({"_id": slot["commit"]})
                if doc is not None and doc.get("outbox_slot") == slot["_id"]:
                    docs.append(doc)
                    walk["open"].add(slot["_id"])
                    self._recovered[doc["_id"]] = (dead["_id"], slot["_id"])
                else:
                    walk["void"].add(slot["_id"])  # its append collided, or never got to write the commit
            walk["finished"] = misses >= MAX_IN_FLIGHT
            walk["next"] = seq - misses
            self._recovering[dead["_id"]] = walk
            if not walk["open"]:
                await self._finish_walk(dead["_id"], walk)
        docs.sort(key=lambda d: (d["stream_id"], d["from_version"]))
        return [await self._pending_of(doc) for doc in docs]

    async def pending_commit(self, commit: str) -> PendingCommit | None:
        """``commit`` if its slot is still there (its events may not be on Kafka yet)."""
        stream = commit.rsplit("@", 1)[0]
        doc = next((d for d in self._streams.get(stream, ()) if d["_id"] == commit), None) or await self.commits.find_one({"_id": commit})
        slot = None if doc is None else doc.get("outbox_slot")
        if slot is None or (found := await self.commits.find_one({"_id": slot})) is None or found.get("void"):
            return None
        return await self._pending_of(doc)

    async def _pending_of(self, doc: Doc) -> PendingCommit:
        await self.codec.prepare(stored_items([doc]), writing=False)
        return PendingCommit(doc["_id"], doc["stream_id"], doc["prev_commit"], tuple(recorded_events(doc, self.codec)))

    # -- batch tools: the global order, stream ids, integrity ------------------------------

    async def stream_ids(self) -> list[str]:
        """Every stream id (a scan: batch tools only)."""
        return sorted(s for s in await self.commits.distinct("stream_id") if isinstance(s, str))

    async def sequence(self, max_commits: int = 1000) -> int:
        """Give positions to up to ``max_commits`` written-but-unsequenced commits; returns how many.

        A batch operation: it reads the whole sequence log (once per process) and scans the
        commits for those not yet placed. Services never call it; ``jmo audit`` does before
        ``read_all``. The unique batch ``_id`` fences concurrent sequencers.
        """
        await self._catch_up()
        await self._reconcile()
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
        for cid in [c for c in self._unsequenced if c in self._sequenced]:
            del self._unsequenced[cid]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Sequenced events after ``after_position`` in global order (batch tools).

        Reads the sequence log only when what this process knows of it ends within the page, and
        the commits ahead of the reader: each fetch takes the page's commits and those after them,
        up to :data:`READ_AHEAD_EVENTS` events, and keeps the rest, until the reader has passed them,
        for the next pages (a reader going forward page by page costs one ``_id: {$in}`` query per
        window, not one per page)."""
        if self._next_position - 1 < after_position + limit:
            await self._catch_up()
        wanted = self._assignments_after(after_position, limit)
        ahead = self._ahead
        if any(a["commit"] not in ahead for a in wanted):
            window = [a["commit"] for a in self._assignments_after(after_position, max(limit, READ_AHEAD_EVENTS))]
            fetched = await self._fetch([c for c in window if c not in ahead])
            ahead = self._ahead = {c: d for c in window if (d := ahead.get(c) or fetched.get(c)) is not None}
        docs = {a["commit"]: ahead.get(a["commit"]) for a in wanted}
        await self.codec.prepare(stored_items(d for d in docs.values() if d is not None), writing=False)
        out: list[RecordedEvent] = []
        for a in wanted:
            doc = docs[a["commit"]]
            if doc is None:
                raise LookupError(f"sequenced commit {a['commit']} is missing from the log (run verify)")
            out.extend(recorded_events({**doc, "position": a["position"]}, self.codec, after_position=after_position))
        out = out[:limit]
        for a in wanted:  # read ahead, not a cache: what the reader has passed is not kept
            if out and a["position"] + a["count"] - 1 <= out[-1].position:
                self._ahead.pop(a["commit"], None)
        return out

    def _assignments_after(self, after_position: int, events: int) -> list[Doc]:
        """The known assignments holding the first ``events`` events after ``after_position``."""
        wanted: list[Doc] = []
        count = 0
        for start in self._starts[max(bisect.bisect_right(self._starts, after_position) - 1, 0) :]:
            for a in self._batches[start]:
                if count >= events:
                    return wanted
                if (after := a["position"] + a["count"] - 1 - after_position) > 0:
                    wanted.append(a)
                    count += min(after, a["count"])  # a page may begin inside a commit
        return wanted

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
        """Every commit no sequencer has placed yet: one scan of the commits."""
        async for doc in self.commits.find({}, _ORDER_FIELDS):
            if "stream_id" in doc and doc["_id"] not in self._sequenced:  # not a slot or side document
                self._unsequenced.setdefault(doc["_id"], doc)

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
        """Documents by ``_id``, :data:`FETCH_IN` to a query (``_id: {$in: [...]}``: the ``_id``
        index serves it on MongoDB, and on the embedded FerretDB with its JMO patch)."""
        found: dict[str, Doc] = {}
        for start in range(0, len(ids), FETCH_IN):
            async for doc in self.commits.find({"_id": {"$in": list(ids[start:start + FETCH_IN])}}, projection):
                found[doc["_id"]] = doc
        return found

    async def verify(self, progress: Callable[[int], None] | None = None) -> list[IntegrityProblem]:
        """Every hash chain and the sequence log checked against the commits: one pass over the
        commits (a scan), in batches of :data:`VERIFY_BATCH` taken as raw BSON, each batch decoded
        and hashed while the database reads the next one, each commit then kept only as its
        :func:`~jmo_eventstore.commits.chain_link`.
        ``progress`` is called with the number of commits checked since its last call."""
        problems: list[IntegrityProblem] = []
        by_stream: dict[str, list[Doc]] = {}
        options = self.commits.codec_options
        raw = self.commits.with_options(codec_options=options.with_options(document_class=RawBSONDocument))
        async for batch in _prefetched(raw.find({}, batch_size=VERIFY_BATCH), VERIFY_BATCH):
            # decoded here, not as it arrives: the database reads the next batch meanwhile
            commits = [doc for doc in (bson.decode(r.raw, options) for r in batch) if "stream_id" in doc]  # not the slots or side documents
            for doc in commits:
                by_stream.setdefault(doc["stream_id"], []).append(chain_link(doc))
            if progress is not None:
                progress(len(commits))
        for stream in sorted(by_stream):
            problems.extend(verify_chain(stream, sorted(by_stream[stream], key=lambda d: d["to_version"])))
        present = {d["_id"] for links in by_stream.values() for d in links}
        expected_start = 1
        async for batch in self.sequence_log.find({}).sort("_id", ASCENDING):
            if batch["_id"] != batch_id(expected_start) or batch["start"] != expected_start:
                problems.append(IntegrityProblem("<sequence>", None, f"sequence batch {batch['_id']} where {expected_start} was expected"))
            for a in batch["commits"]:
                if a["commit"] not in present:
                    problems.append(IntegrityProblem(a["commit"].rsplit("@", 1)[0], a["commit"], "sequenced commit is missing"))
            expected_start = batch["end"] + 1
        return problems


async def _prefetched(cursor: AsyncCursor, size: int) -> AsyncIterator[list[Doc]]:
    """The cursor's documents in lists of up to ``size``, the next list already being read while
    the caller works on one (the database and the caller work side by side). The cursor is read to
    its end, or closed if the caller stops early; a failed read is raised to the caller."""
    ahead: asyncio.Queue[list[Doc] | Exception] = asyncio.Queue(maxsize=1)

    async def read() -> None:
        try:
            while batch := await cursor.to_list(size):
                await ahead.put(batch)
        except Exception as failed:  # handed over: the caller raises it
            await ahead.put(failed)
            return
        await ahead.put([])

    reader = asyncio.create_task(read())
    try:
        while batch := await ahead.get():
            if isinstance(batch, Exception):
                raise batch
            yield batch
        await reader
    finally:
        if not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await cursor.close()


def _cause_in(docs: Sequence[Doc], cause_id: str) -> AppendResult | None:
    for doc in docs:
        if doc["cause_id"] == cause_id:
            return result_of(doc, already=True)
    return None
