"""What the JMO patches of the embedded FerretDB (``install.FERRETDB_PATCHES``) promise: every filter
that names ``_id`` is answered from the ``_id`` index, the rest of the filter still applied (a
conditional write, ``{_id, applied}``, is one index look-up, not a scan), and so is ``_id: {$in: [...]}``
of strings; and writes that first
match a document apply to it one at a time, as on MongoDB (no lost update, no lost ``$inc``)."""

from __future__ import annotations

from typing import Any

import pytest

from jmo_contracts import new_id

pytestmark = pytest.mark.integration


async def pushed_down(db: Any, collection: str, filter_: dict[str, Any]) -> bool:
    explained = await db.command("explain", {"find": collection, "filter": filter_}, verbosity="queryPlanner")
    return bool(explained.get("filterPushdown"))


async def test_a_filter_naming_id_among_other_conditions_is_narrowed_by_the_id_index_and_still_applied_whole(mongo_client: Any, database_prefix: str) -> None:
    db = mongo_client[f"{database_prefix}pushdown_{new_id()[:8]}"]
    profiles = db["profiles"]
    await profiles.insert_many([{"_id": f"p{i}", "applied": [f"m{i}"], "status": "REGISTERED"} for i in range(20)])

    assert await pushed_down(db, "profiles", {"_id": "p3"})
    assert await pushed_down(db, "profiles", {"_id": "p3", "applied": ["m3"]})
    assert await pushed_down(db, "profiles", {"applied": ["m3"], "_id": "p3", "status": {"$in": ["REGISTERED"]}})
    assert not await pushed_down(db, "profiles", {"applied": ["m3"]})  # no _id: a scan, as before (and as FerretDB does)

    assert await profiles.find_one({"_id": "p3", "applied": ["m3"]}) is not None
    assert await profiles.find_one({"_id": "p3", "applied": ["m4"]}) is None  # the other conditions still hold
    assert await profiles.count_documents({"_id": "p3", "status": "ACTIVE"}) == 0
    assert (await profiles.replace_one({"_id": "p3", "applied": ["stale"]}, {"applied": ["m3", "x"]})).matched_count == 0
    assert (await profiles.replace_one({"_id": "p3", "applied": ["m3"]}, {"applied": ["m3", "x"]})).modified_count == 1
    assert (await profiles.update_one({"_id": "p4", "status": "ACTIVE"}, {"$set": {"status": "X"}})).matched_count == 0
    assert (await profiles.delete_one({"_id": "p5", "applied": ["m5"]})).deleted_count == 1
    assert await profiles.find_one_and_update({"_id": "p6", "applied": ["m6"]}, {"$set": {"status": "ACTIVE"}}) is not None
    assert [d["_id"] async for d in profiles.find({"_id": "p6", "status": "ACTIVE"})] == ["p6"]



async def test_a_filter_of_id_in_a_list_of_strings_is_served_by_the_id_index_and_finds_exactly_the_listed_documents(mongo_client: Any, database_prefix: str) -> None:
    db = mongo_client[f"{database_prefix}pushdown_in_{new_id()[:8]}"]
    commits = db["commits"]
    await commits.insert_many([{"_id": f"s{i}@0", "n": i} for i in range(30)])
    await commits.insert_one({"_id": 7, "n": -1})  # an _id that is not a string

    wanted = ["s3@0", "s17@0", "s29@0", "missing@0"]
    assert await pushed_down(db, "commits", {"_id": {"$in": wanted}})
    assert await pushed_down(db, "commits", {"_id": {"$in": wanted}, "n": {"$gt": 10}})
    assert sorted([d["_id"] async for d in commits.find({"_id": {"$in": wanted}})]) == ["s17@0", "s29@0", "s3@0"]
    assert sorted([d["_id"] async for d in commits.find({"_id": {"$in": wanted}, "n": {"$gt": 10}})]) == ["s17@0", "s29@0"]  # the rest still applies

    # anything else is a scan, as before, and still right
    assert not await pushed_down(db, "commits", {"_id": {"$in": ["s3@0", 7]}})
    assert sorted([d["n"] async for d in commits.find({"_id": {"$in": ["s3@0", 7]}})]) == [-1, 3]
    assert not await pushed_down(db, "commits", {"_id": {"$in": []}}) and await commits.count_documents({"_id": {"$in": []}}) == 0
    assert not await pushed_down(db, "commits", {"_id": {"$in": ["s3@0"], "$ne": "s3@0"}})
    assert await commits.count_documents({"_id": {"$in": ["s3@0"], "$ne": "s3@0"}}) == 0
    assert not await pushed_down(db, "commits", {"_id": {"$nin": ["s3@0"]}})

async def test_writes_that_match_a_document_first_apply_to_it_one_at_a_time_as_on_mongodb(mongo_client: Any, database_prefix: str) -> None:
    """Two conditional writes of one document never both apply, and no increment is lost (the
    embedded FerretDB serialises update / findAndModify / delete per collection)."""
    import asyncio

    db = mongo_client[f"{database_prefix}atomic_{new_id()[:8]}"]
    docs = db["docs"]
    await docs.insert_many([{"_id": "doc", "version": 0}, {"_id": "counter", "count": 0}])
    applied = 0

    async def fold_repeatedly() -> None:
        nonlocal applied
        for _ in range(15):
            read = await docs.find_one({"_id": "doc"})
            written = await docs.replace_one({"_id": "doc", "version": read["version"]}, {"version": read["version"] + 1})
            applied += written.modified_count

    async def count_repeatedly() -> None:
        for _ in range(15):
            await docs.find_one_and_update({"_id": "counter"}, {"$inc": {"count": 1}})

    await asyncio.gather(*(fold_repeatedly() for _ in range(4)), *(count_repeatedly() for _ in range(4)))
    final = await docs.find_one({"_id": "doc"})
    assert final["version"] == applied  # each version written by exactly one of the writers that read it
    assert (await docs.find_one({"_id": "counter"}))["count"] == 4 * 15  # no increment lost
