"""The MongoDB event store passes the shared contract suite on the real MongoDB-protocol server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from datetime import UTC, datetime, timedelta

from pymongo import AsyncMongoClient

from jmo_contracts import new_id, stream_id
from jmo_eventstore import ConcurrencyConflict, MongoEventStore
from jmo_eventstore import mongo
from jmo_eventstore.mongo import SLOT_PREFIX, _prefetched, beside_id, slot_id
from jmo_eventstore.testing import CommandLog, EventStoreContract, an_event, read_everything

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(mongo_client: AsyncMongoClient, database_prefix: str) -> MongoEventStore:
    db = mongo_client[f"{database_prefix}store"]
    s = MongoEventStore(db, name=f"c{new_id()[:8]}")
    await s.ensure_indexes()
    return s


@pytest.fixture
async def second_store(store: MongoEventStore, infra: Any) -> AsyncIterator[MongoEventStore]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, socketTimeoutMS=20_000)
    db = client[store.commits.database.name]
    yield MongoEventStore(db, name=store.commits.name.removesuffix("_commits"))
    await client.close()


@pytest.fixture
def tamper() -> Callable[..., Any]:
    async def _tamper(store: MongoEventStore, commit_id: str, mutate: Callable[[dict[str, Any]], None]) -> None:
        doc = await store.commits.find_one({"_id": commit_id})
        mutate(doc)
        await store.commits.replace_one({"_id": commit_id}, doc)

    return _tamper


@pytest.fixture
def remove() -> Callable[..., Any]:
    async def _remove(store: MongoEventStore, commit_id: str) -> None:
        await store.commits.delete_one({"_id": commit_id})

    return _remove


@pytest.fixture
async def counted(store: MongoEventStore, infra: Any) -> AsyncIterator[tuple[MongoEventStore, CommandLog]]:
    counter = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, socketTimeoutMS=20_000, event_listeners=[counter])
    yield MongoEventStore(client[store.commits.database.name], name=store.commits.name.removesuffix("_commits")), counter
    await client.close()


class TestMongoEventStore(EventStoreContract):
    async def test_sequencing_places_the_commits_of_every_instance(self, store: MongoEventStore, second_store: MongoEventStore) -> None:
        a, b = stream_id("test"), stream_id("test")
        await store.append(a, 0, [an_event(a, 1)], cause_id=new_id())
        await store.sequence()
        checkpoint = (await read_everything(store))[-1].position
        await second_store.append(b, 0, [an_event(b, 2)], cause_id=new_id())
        assert await store.sequence() == 1
        assert [e.stream_id for e in await read_everything(store, checkpoint)] == [b]

    async def test_a_stream_written_by_two_instances_is_sequenced_in_version_order(self, store: MongoEventStore, second_store: MongoEventStore) -> None:
        s = stream_id("test")
        await second_store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        await store.read_stream(s)
        await store.append(s, 1, [an_event(s, 2)], cause_id=new_id())
        assert await store.sequence() == 2
        assert [e.stream_version for e in await read_everything(store)] == [1, 2]

    async def test_the_log_is_never_rewritten_by_sequencing(self, store: MongoEventStore) -> None:
        s = stream_id("test")
        await store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        before = await store.commits.find_one({"_id": f"{s}@0"})
        await store.sequence()
        assert await store.commits.find_one({"_id": f"{s}@0"}) == before

    async def test_a_command_on_a_stream_this_instance_knows_costs_one_insert_and_no_read(self, counted: tuple[MongoEventStore, CommandLog]) -> None:
        store, counter = counted
        s = stream_id("test")
        await store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        counter.clear()
        history = await store.read_stream(s, cached=True)
        await store.append(s, len(history), [an_event(s, 2)], cause_id=new_id())
        assert counter.names == ["insert"]  # the outbox slot and the commit, in one command
        await store.settle([c.commit_id for c in await store.appended_commits(10)])
        assert counter.names == ["insert", "update", "delete"]  # the watermark, then the slots below it
        assert await store.commits.count_documents({"_id": {"$regex": f"^{SLOT_PREFIX}"}}) == 0

    async def test_a_stream_presumed_new_is_started_with_one_insert_and_no_read(self, counted: tuple[MongoEventStore, CommandLog]) -> None:
        store, counter = counted
        first = stream_id("test")
        await store.append(first, 0, [an_event(first, 1)], cause_id=new_id())  # the instance's first append registers it
        s = stream_id("test")
        counter.clear()
        assert await store.read_stream(s, cached=True, presume_new=True) == []
        await store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        assert counter.names == ["insert"]
        counter.clear()
        assert await store.read_stream(stream_id("test"), cached=True) == []  # without the presumption, a stream not seen is looked for
        assert counter.names == ["find"]

    async def test_a_forward_reader_fetches_commits_a_window_ahead_and_reads_the_sequence_log_only_at_its_end(self, counted: tuple[MongoEventStore, CommandLog], monkeypatch: pytest.MonkeyPatch) -> None:
        store, counter = counted
        monkeypatch.setattr(mongo, "READ_AHEAD_EVENTS", 12)
        streams = [stream_id("test") for _ in range(10)]
        for n, s in enumerate(streams):
            await store.append(s, 0, [an_event(s, n * 3 + i) for i in range(3)], cause_id=new_id())  # 30 events, 3 to a commit
        await store.settle([c.commit_id for c in await store.appended_commits(100)])
        assert await store.sequence() == 10

        async def pages() -> list[list[int]]:
            counter.clear()
            seen, after = [], 0
            while page := await store.read_all(after, limit=5):  # pages end inside commits
                seen.append([e.position for e in page])
                after = page[-1].position
            return seen

        assert await pages() == [list(range(n, n + 5)) for n in range(1, 31, 5)]  # full pages, also those that begin inside a commit
        fetches = [c["filter"]["_id"]["$in"] for c in counter.of("find", store.commits.name)]
        assert [len(ids) for ids in fetches] == [4, 4, 2]  # windows of 12 events from where a page needs one, less what is held
        assert sorted(i for ids in fetches for i in ids) == sorted(f"{s}@0" for s in streams)  # no commit read twice
        assert len(counter.of("find", store.sequence_log.name)) == 1  # only past what it knew: for the empty page at the end
        assert sum(await pages(), []) == list(range(1, 31))
        assert len(counter.of("find", store.commits.name)) == 3  # read again, not served from what was passed

    async def test_the_stream_cache_keeps_the_most_recently_used_commits_up_to_its_bound(self, counted: tuple[MongoEventStore, CommandLog]) -> None:
        base, counter = counted
        store = MongoEventStore(base.commits.database, name=base.commits.name.removesuffix("_commits"), cache_commits=2)
        streams = [stream_id("test") for _ in range(3)]
        for n, s in enumerate(streams):
            await store.append(s, 0, [an_event(s, n)], cause_id=new_id())
        counter.clear()
        for s in (streams[2], streams[1]):
            assert len(await store.read_stream(s, cached=True)) == 1
        assert counter.names == []  # the two most recent: held
        assert len(await store.read_stream(streams[0], cached=True)) == 1
        assert [c["filter"]["_id"] for c in counter.of("find", store.commits.name)] == [f"{streams[0]}@0", f"{streams[0]}@1"]  # evicted: read back by _id
        assert sum(len(docs) for docs in store._streams.values()) == 2 and streams[2] not in store._streams  # and the least recently used went

    async def test_a_stream_wrongly_presumed_new_is_found_out_by_the_append(self, store: MongoEventStore, second_store: MongoEventStore) -> None:
        s = stream_id("test")
        await second_store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        assert await store.read_stream(s, cached=True, presume_new=True) == []
        with pytest.raises(ConcurrencyConflict):
            await store.append(s, 0, [an_event(s, 2)], cause_id=new_id())
        assert [e.stream_version for e in await store.read_stream(s, cached=True, presume_new=True)] == [1]  # reloaded: now known

    async def test_a_commit_that_lost_the_race_leaves_a_void_slot_that_is_never_published(self, store: MongoEventStore, second_store: MongoEventStore) -> None:
        s = stream_id("test")
        await second_store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        with pytest.raises(ConcurrencyConflict):
            await store.append(s, 0, [an_event(s, 2)], cause_id=new_id())  # presumed new, but it is not
        assert await store.commits.find_one({"_id": slot_id(store.instance, 0)}) == {"_id": slot_id(store.instance, 0), "cause_id": slot_id(store.instance, 0), "void": True}
        await asyncio.sleep(0.05)
        found = await second_store.pending_commits(older_than=0.01, limit=10)
        assert [c.commit_id for c in found] == []  # store's only slot is void
        await store.settle([])
        assert await store.commits.find_one({"_id": slot_id(store.instance, 0)}) is None

    async def test_a_slot_whose_commit_never_came_is_dropped_with_its_dead_instance(self, store: MongoEventStore) -> None:
        s = stream_id("test")
        await store.relays.insert_one({"_id": "dead", "heartbeat": datetime.now(UTC) - timedelta(seconds=60), "next": 0})
        await store.commits.insert_one({"_id": slot_id("dead", 0), "cause_id": slot_id("dead", 0), "commit": f"{s}@0", "at": datetime.now(UTC)})  # then it died
        assert await store.pending_commits(older_than=1, limit=10) == []
        assert await store.relays.find_one({"_id": "dead"}) is None
        assert await store.commits.find_one({"_id": slot_id("dead", 0)}) is None

    async def test_a_recoverer_dying_while_it_settles_a_dead_instances_slots_leaves_none_of_them_behind(self, store: MongoEventStore, second_store: MongoEventStore) -> None:
        """The dead instance's watermark moves before its slots are deleted: had 70 slots gone while
        the watermark stayed at 0, the next walk would have met a gap of MAX_IN_FLIGHT slots, taken
        it for the end of the outbox, and abandoned the 30 commits after it unpublished."""
        s = stream_id("test")
        ids = [(await store.append(s, n, [an_event(s, n + 1)], cause_id=new_id())).commit_id for n in range(100)]  # then `store` dies unsettled
        await asyncio.sleep(0.05)
        first = await second_store.pending_commits(older_than=0.01, limit=70)
        assert [c.commit_id for c in first] == ids[:70]

        async def dies(*_args: Any, **_kwargs: Any) -> None:
            raise ConnectionError("the recoverer died while settling")

        second_store.relays.update_one = dies  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await second_store.settle([c.commit_id for c in first])
        third = MongoEventStore(store.commits.database, name=store.commits.name.removesuffix("_commits"))
        found: list[str] = []
        for _ in range(4):
            await asyncio.sleep(0.05)
            batch = [c.commit_id for c in await third.pending_commits(older_than=0.01, limit=70)]
            await third.settle(batch)
            found += batch
        assert set(ids) <= set(found)  # the first 70 published again (at least once), the last 30 not lost
        assert await third.relays.find_one({"_id": store.instance}) is None
        assert await store.commits.count_documents({"_id": {"$regex": f"^{SLOT_PREFIX}{store.instance}~"}}) == 0

    async def test_slots_an_instance_died_before_deleting_below_its_watermark_go_with_it(self, store: MongoEventStore, second_store: MongoEventStore) -> None:
        """An instance moves its watermark, then deletes the settled slots below it: dying in
        between leaves them behind, below where any walk starts. The instance that finds it dead
        deletes them when it drops it."""
        s = stream_id("test")
        ids = [(await store.append(s, n, [an_event(s, n + 1)], cause_id=new_id())).commit_id for n in range(5)]

        async def dies(_ids: Any) -> None:
            raise ConnectionError("killed between moving the watermark and deleting the slots")

        store._delete = dies  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await store.settle(ids)
        assert (await store.relays.find_one({"_id": store.instance}))["next"] == 5
        await asyncio.sleep(0.05)
        assert await second_store.pending_commits(older_than=0.01, limit=10) == []  # settled: nothing to publish again
        assert await second_store.relays.find_one({"_id": store.instance}) is None
        assert await second_store.commits.count_documents({"_id": {"$regex": f"^{SLOT_PREFIX}{store.instance}~"}}) == 0

async def test_verify_checks_a_log_read_in_many_batches(store: MongoEventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan is read a batch ahead of the check: every batch is checked, and a commit altered,
    removed or moved in any of them is found."""
    monkeypatch.setattr(mongo, "VERIFY_BATCH", 2)
    streams = [stream_id("test") for _ in range(3)]
    for s in streams:
        for v in range(3):
            await store.append(s, v, [an_event(s, v)], cause_id=new_id())
    checked: list[int] = []
    assert await store.verify(progress=checked.append) == []
    assert sum(checked) == 9 and max(checked) <= 2
    altered, removed = f"{streams[0]}@1", f"{streams[1]}@1"
    doc = await store.commits.find_one({"_id": altered})
    doc["events"][0]["payload"]["reason"] = "event 666"
    await store.commits.replace_one({"_id": altered}, doc)
    await store.commits.delete_one({"_id": removed})
    moved = await store.commits.find_one({"_id": f"{streams[2]}@2"})
    await store.commits.delete_one({"_id": moved["_id"]})
    await store.commits.insert_one({**moved, "_id": f"{streams[2]}@9", "from_version": 10, "to_version": 10})
    found = {(p.stream_id, p.commit_id) for p in await store.verify()}
    assert (streams[0], altered) in found
    assert (streams[1], f"{streams[1]}@2") in found  # the commit after the removed one no longer links
    assert (streams[2], f"{streams[2]}@9") in found


class _Cursor:
    """A cursor that hands out ``batches`` and then fails (or ends)."""

    def __init__(self, batches: list[list[dict[str, Any]]], fail: bool) -> None:
        self.batches, self.fail, self.closed = list(batches), fail, False

    async def to_list(self, size: int) -> list[dict[str, Any]]:
        if self.batches:
            return self.batches.pop(0)
        if self.fail:
            raise ConnectionError("the database went away")
        return []

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("fail", [False, True])
async def test_verify_reads_ahead_and_a_failed_read_reaches_the_caller(fail: bool) -> None:
    cursor = _Cursor([[{"n": 1}], [{"n": 2}]], fail)
    seen: list[int] = []

    async def read_all() -> None:
        async for batch in _prefetched(cursor, 1):  # type: ignore[arg-type]
            seen.extend(d["n"] for d in batch)

    if fail:
        with pytest.raises(ConnectionError):
            await read_all()
    else:
        await read_all()
    assert seen == [1, 2] and cursor.closed


async def test_side_documents_ride_in_the_decisions_own_insert_before_its_slot_and_commit(counted: tuple[MongoEventStore, CommandLog]) -> None:
    store, counter = counted
    first = stream_id("test")
    await store.append(first, 0, [an_event(first, 1)], cause_id=new_id())  # the instance's first append registers it
    s = stream_id("test")
    counter.clear()
    await store.append(s, 0, [an_event(s, 1)], cause_id=new_id(), beside={"otp~1": {"sealed": "x"}, "otp~2": {"sealed": "y"}})
    assert counter.names == ["insert"]  # no command of their own
    [insert] = counter.of("insert", store.commits.name)
    assert [d["_id"] for d in insert["documents"]] == [beside_id("otp~1"), beside_id("otp~2"), slot_id(store.instance, 1), f"{s}@0"]
    assert insert["ordered"] is True  # the commit lands only after them: they are durable no later than the decision
    assert [d["cause_id"] for d in insert["documents"][:2]] == [beside_id("otp~1"), beside_id("otp~2")]  # no two null causes in the unique index


async def test_side_documents_past_their_expiry_are_removed_by_a_ttl_index_where_the_server_has_one(store: MongoEventStore) -> None:
    ttl = await store.ensure_indexes()  # again: creating the same indexes is a no-op
    indexes = {ix["name"]: ix for ix in await (await store.commits.list_indexes()).to_list()}
    if ttl:  # MongoDB: a partial TTL index, so commits and slots (no expires_at) are not in it
        assert indexes["beside_ttl"]["expireAfterSeconds"] == 0 and indexes["beside_ttl"]["partialFilterExpression"] == {"expires_at": {"$exists": True}}
    else:  # FerretDB v1 has no TTL indexes: a side document stays until dropped
        assert "beside_ttl" not in indexes


async def test_appends_that_arrive_while_one_is_in_flight_share_the_next_insert(counted: tuple[MongoEventStore, CommandLog]) -> None:
    store, counter = counted
    first = stream_id("test")
    await store.append(first, 0, [an_event(first, 1)], cause_id=new_id())  # the instance's first append registers it
    streams = [stream_id("test") for _ in range(6)]
    counter.clear()
    events = [an_event(s, n) for n, s in enumerate(streams)]
    results = await asyncio.gather(*(store.append(s, 0, [e], cause_id=new_id()) for s, e in zip(streams, events)))
    inserts = counter.of("insert", store.commits.name)
    assert [len(i["documents"]) for i in inserts] == [2, 10]  # the first alone; the five that waited for it, together
    assert [d["_id"] for d in inserts[1]["documents"][1::2]] == [f"{s}@0" for s in streams[1:]]  # each slot before its commit
    assert all(i["ordered"] is True for i in inserts)
    assert [r.commit_id for r in results] == [f"{s}@0" for s in streams]
    published = await store.appended_commits(10)
    assert [c.commit_id for c in published] == [f"{first}@0", *(r.commit_id for r in results)]
    for s, e in zip(streams, events):
        [event] = await second_read(store, s)
        assert event.envelope == e


async def second_read(store: MongoEventStore, s: str) -> list[Any]:
    """The stream as a new instance reads it from the server (no cache of ``store``'s)."""
    return await MongoEventStore(store.commits.database, name=store.commits.name.removesuffix("_commits")).read_stream(s)


async def test_a_collision_inside_a_shared_insert_fails_only_its_own_append(store: MongoEventStore, second_store: MongoEventStore) -> None:
    first = stream_id("test")
    await store.append(first, 0, [an_event(first, 1)], cause_id=new_id())
    taken = stream_id("test")
    await second_store.append(taken, 0, [an_event(taken, 9)], cause_id=new_id())
    before, after = stream_id("test"), stream_id("test")
    results = await asyncio.gather(
        store.append(stream_id("test"), 0, [an_event(first, 1)], cause_id=new_id()),  # the one in flight (wrong stream: refused before any insert)
        store.append(before, 0, [an_event(before, 2)], cause_id=new_id()),
        store.append(taken, 0, [an_event(taken, 3)], cause_id=new_id(), beside={"otp~lost": {"sealed": "x"}}),  # presumed new, but it is not
        store.append(after, 0, [an_event(after, 4)], cause_id=new_id()),
        return_exceptions=True,
    )
    assert isinstance(results[0], ValueError) and isinstance(results[2], ConcurrencyConflict)
    assert [r.commit_id for r in (results[1], results[3])] == [f"{before}@0", f"{after}@0"]  # type: ignore[union-attr]
    assert [e.stream_version for e in await second_read(store, after)] == [1]  # sent again after the collision, and landed
    assert await store.find_beside("otp~lost") is None  # the collided decision's side document went again
    slots = [d async for d in store.commits.find({"_id": {"$regex": f"^{SLOT_PREFIX}{store.instance}~"}})]
    assert sum(1 for d in slots if d.get("void")) == 1  # the collided append's slot, void: never published
    assert [c.commit_id for c in await store.appended_commits(10)] == [f"{first}@0", f"{before}@0", f"{after}@0"]


async def test_commits_queued_for_the_relay_stay_queued_when_reading_one_back_fails(mongo_client: AsyncMongoClient, database_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond ``queue_limit`` only a commit's id waits for the relay, which reads it back; a read
    that fails (a timeout under load) must not drop what was taken with it, or those commits wait
    unpublished until this instance dies and another's recovery finds them."""
    store = MongoEventStore(mongo_client[f"{database_prefix}store"], name=f"c{new_id()[:8]}", queue_limit=1)
    await store.ensure_indexes()
    s = stream_id("test")
    appended = [(await store.append(s, v, [an_event(s, v)], cause_id=new_id())).commit_id for v in range(3)]
    read_back = store.commits.find_one

    async def times_out_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(store.commits, "find_one", read_back)
        raise TimeoutError("the store did not answer")

    monkeypatch.setattr(store.commits, "find_one", times_out_once)
    with pytest.raises(TimeoutError):
        await store.appended_commits(10)
    assert [c.commit_id for c in await store.appended_commits(10)] == appended
    assert await store.appended_commits(10) == []
