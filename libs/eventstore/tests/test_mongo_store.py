"""The MongoDB event store passes the shared contract suite on the real MongoDB-protocol server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_contracts import new_id, stream_id
from jmo_eventstore import MongoEventStore
from jmo_eventstore.testing import EventStoreContract, an_event, read_everything

pytestmark = pytest.mark.integration


@pytest.fixture
async def mongo_client(infra: Any) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, socketTimeoutMS=20_000, serverSelectionTimeoutMS=20_000)
    yield client
    await client.close()


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


class TestMongoEventStore(EventStoreContract):
    async def test_a_commit_written_with_an_earlier_timestamp_after_a_read_is_still_delivered(self, store: MongoEventStore) -> None:
        """A writer whose clock lags (or whose insert was slow) commits 'in the past'; no reader skips it."""
        a, b = stream_id("test"), stream_id("test")
        await store.append(a, 0, [an_event(a, 1)], cause_id=new_id())
        await store.sequence()
        checkpoint = (await read_everything(store))[-1].position
        await store.append(b, 0, [an_event(b, 2)], cause_id=new_id())
        await store.commits.update_one({"_id": f"{b}@0"}, {"$set": {"recorded_at": "2000-01-01T00:00:00.000000+00:00"}})
        await store.sequence()
        assert [e.stream_id for e in await read_everything(store, checkpoint)] == [b]

    async def test_a_sequencer_that_died_before_applying_its_batch_is_finished_by_the_next(self, store: MongoEventStore) -> None:
        s = stream_id("test")
        await store.append(s, 0, [an_event(s, 1), an_event(s, 2)], cause_id=new_id())
        await store.sequence_log.insert_one({"_id": 1, "end": 2, "commits": [{"commit": f"{s}@0", "position": 1, "count": 2}], "applied": False})
        assert await store.read_all(0) == []  # an unapplied batch is not visible yet
        await store.append(s, 2, [an_event(s, 3)], cause_id=new_id())
        await store.sequence()
        assert [e.position for e in await read_everything(store)] == [1, 2, 3]

    async def test_a_successor_whose_predecessor_is_left_out_of_a_batch_waits_for_it(self, store: MongoEventStore) -> None:
        s = stream_id("test")
        await store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        await store.append(s, 1, [an_event(s, 2)], cause_id=new_id())
        # make the successor look older so a batch of one would pick it first
        await store.commits.update_one({"_id": f"{s}@1"}, {"$set": {"recorded_at": "2000-01-01T00:00:00.000000+00:00"}})
        assert await store.sequence(max_commits=1) == 0
        await store.sequence(max_commits=10)
        assert [e.stream_version for e in await read_everything(store)] == [1, 2]
