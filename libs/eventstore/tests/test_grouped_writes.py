"""Grouped single writes (:class:`GroupedWrites`) on the real store: concurrent writes apply in the
order asked, share commands, and a refused one fails only its own caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient, DeleteOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, WriteError

from jmo_contracts import new_id
from jmo_eventstore.grouped import GroupedWrites

@pytest.fixture
async def collection(infra: Any, database_prefix: str) -> Any:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    yield client[f"{database_prefix}grouped"][f"writes_{new_id()[:8]}"]
    await client.close()


@pytest.mark.integration
async def test_writes_asked_at_once_apply_in_the_order_asked_and_share_commands(collection: Any) -> None:
    writes = GroupedWrites(collection)
    await asyncio.gather(
        writes.write(ReplaceOne({"_id": "k1"}, {"v": "a"}, upsert=True)),
        writes.write(ReplaceOne({"_id": "k2"}, {"v": "b"}, upsert=True)),
        writes.write(DeleteOne({"_id": "k1"})),
        writes.write(UpdateOne({"_id": "k2"}, {"$set": {"w": 1}}, upsert=True)),
        *(writes.write(ReplaceOne({"_id": "k3"}, {"v": n}, upsert=True)) for n in range(10)),
    )
    assert await collection.find().sort("_id").to_list() == [{"_id": "k2", "v": "b", "w": 1}, {"_id": "k3", "v": 9}]  # the delete after k1's write; k3's last
    assert writes.sizes == {1: 1, 13: 1}  # the first alone, the thirteen asked meanwhile in one bulk write


async def test_a_refused_write_fails_only_its_caller_and_those_after_it_are_sent_again() -> None:
    """As MongoDB answers an ordered bulk write that stops at a refused write (FerretDB v1 answers
    such a command without ``nModified``, which PyMongo cannot read: there every caller of that
    command gets the error, as for a dropped connection; the writes grouped here are never refused)."""
    sent: list[list[str]] = []

    class Collection:
        async def bulk_write(self, operations: list[Any], *, ordered: bool) -> None:
            assert ordered
            ids = [op._filter["_id"] for op in operations]  # noqa: SLF001
            sent.append(ids)
            await asyncio.sleep(0)
            if "refused" in ids:
                at = ids.index("refused")
                raise BulkWriteError({"writeErrors": [{"index": at, "code": 14, "errmsg": "Cannot increment with non-numeric argument"}], "nInserted": 0})

    writes = GroupedWrites(Collection())  # type: ignore[arg-type]

    async def outcome(key: str) -> str:
        try:
            await writes.write(UpdateOne({"_id": key}, {"$inc": {"n": 1}}))
        except WriteError as e:
            return f"refused {e.code}"
        return "ok"

    assert await asyncio.gather(*(outcome(k) for k in ("first", "before", "refused", "after"))) == ["ok", "ok", "refused 14", "ok"]
    assert sent == [["first"], ["before", "refused", "after"], ["after"]]  # what followed the refusal was not applied: sent again
