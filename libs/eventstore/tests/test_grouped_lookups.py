"""Grouped look-ups by ``_id`` (:class:`GroupedLookups`): each caller gets what its own
``find_one({_id: ...})`` would have, whatever else shared the command; on the real store too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import AutoReconnect

from jmo_contracts import new_id
from jmo_eventstore.grouped import GroupedLookups


class Collection:
    """``find_one`` / ``find({_id: {$in}})`` on a dict, each taking a few turns of the loop like a
    round trip, so callers arriving meanwhile must wait; records the ids each command asked for."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.commands: list[list[str]] = []
        #: A command asking for one of these ids fails as a dropped connection would.
        self.dropped_with: set[str] = set()

    async def _round_trip(self, ids: list[str]) -> None:
        self.commands.append(ids)
        for _ in range(3):
            await asyncio.sleep(0)
        if self.dropped_with & set(ids):
            raise AutoReconnect("connection closed")

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        await self._round_trip([query["_id"]])
        return self.docs.get(query["_id"])

    def find(self, query: dict[str, Any]) -> Any:
        ids = query["_id"]["$in"]

        class Pending:
            async def to_list(_self, length: int | None = None) -> list[dict[str, Any]]:  # noqa: N805, ARG002
                await self._round_trip(ids)
                return [self.docs[i] for i in ids if i in self.docs]

        return Pending()


async def test_look_ups_that_arrive_while_one_is_in_flight_share_the_next_command() -> None:
    collection = Collection({f"k{i}": {"_id": f"k{i}", "n": i} for i in range(5)})
    lookups = GroupedLookups(collection, max_ids=90)  # type: ignore[arg-type]
    asked = ["k0", "k1", "k2", "missing", "k2", "k4"]
    found = await asyncio.gather(*(lookups.find_one(i) for i in asked))
    assert [d and d["n"] for d in found] == [0, 1, 2, None, 2, 4]  # each its own answer; the same id twice, twice
    assert collection.commands == [["k0"], ["k1", "k2", "missing", "k4"]]  # the first alone, the rest in one
    assert found[2] is not found[4]  # copies: a caller changing its document changes nobody else's


async def test_groups_stay_within_max_ids() -> None:
    collection = Collection({})
    lookups = GroupedLookups(collection, max_ids=3)  # type: ignore[arg-type]
    await asyncio.gather(*(lookups.find_one(f"k{i}") for i in range(8)))
    assert [len(c) for c in collection.commands] == [1, 3, 3, 1]


async def test_an_error_reaches_the_callers_of_that_command_only() -> None:
    collection = Collection({"k1": {"_id": "k1"}})
    collection.dropped_with = {"k2"}
    lookups = GroupedLookups(collection, max_ids=90)  # type: ignore[arg-type]

    async def outcome(i: str) -> str:
        try:
            return "found" if await lookups.find_one(i) else "none"
        except AutoReconnect:
            return "error"

    assert await asyncio.gather(outcome("k1"), outcome("k1"), outcome("k2")) == ["found", "error", "error"]  # the second command carried k2
    assert await outcome("k1") == "found"  # sent on its own again: nothing left waiting
    assert collection.commands == [["k1"], ["k1", "k2"], ["k1"]]


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.integration
async def test_on_the_real_store_concurrent_look_ups_get_their_documents_in_fewer_commands(infra: Any, database_prefix: str) -> None:
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[counter])
    try:
        collection = client[f"{database_prefix}grouped"][f"lookups_{new_id()[:8]}"]
        await collection.insert_many([{"_id": f"k{i}", "n": i} for i in range(30)])
        lookups = GroupedLookups(collection)
        found = await asyncio.gather(*(lookups.find_one(f"k{i}") for i in range(0, 40, 2)))  # 20 look-ups, five of ids that are not there
    finally:
        await client.close()
    assert [d and d["n"] for d in found] == [i if i < 30 else None for i in range(0, 40, 2)]
    assert counter.finds == 2  # the first alone, the other nineteen together
