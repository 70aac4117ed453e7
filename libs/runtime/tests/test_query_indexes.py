"""Every query the event store, the relay, the schedules and the key ring send, and the index that
serves it on MongoDB (ARCHITECTURE habit 16).

The store is driven through everything it does (command path, relay path, recovery, timers, batch
tools) with a command listener on the client; each command's shape (collection, filter fields,
sort) must be one of :data:`QUERIES`, and every index named there must exist after the
``ensure_indexes`` of its owner, with keys that start with the filter's (or sort's) fields. The
services' own adapters are checked from their source: every filter they write, in a call or a bulk
statement, is ``{"_id": <value>}`` — equality, the only ``_id`` filter FerretDB v1 answers from its
index unpatched. The store's deletes (:func:`jmo_eventstore.delete_by_id`) and the batch tools'
page fetches name many ids as ``_id: {$in: [...]}``, served by the ``_id`` index on MongoDB and on
the embedded FerretDB with its JMO patch (``libs/devstack/tests/test_ferretdb_patches.py``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from jmo_contracts import new_id, stream_id
from jmo_eventstore import ConcurrencyConflict, MongoEventStore, MongoKeyRing
from jmo_eventstore.testing import an_event
from jmo_runtime.relay import Relay
from jmo_runtime.schedule import Due, MongoSchedule

pytestmark = pytest.mark.integration

ID = "_id_"  # MongoDB's primary-key index, on every collection
SCAN = None  # a batch tool's full scan, by design (jmo audit verify / rebuild): no index

#: (collection suffix, filter fields, sort fields) -> (index name, where it runs)
QUERIES: dict[tuple[str, frozenset[str], tuple[str, ...]], tuple[str | None, str]] = {
    ("_commits", frozenset({"_id"}), ()): (ID, "append (side documents+slot+commit), read_stream walk, recovery walk, settle deletes, void slots, find/drop side documents, read_all pages ($in)"),
    ("_commits", frozenset({"cause_id"}), ()): ("cause_unique", "find_cause: a cause reused by another stream (rare), tools"),
    ("_commits", frozenset(), ()): (SCAN, "batch tools: sequence (reconcile), verify, stream_ids"),
    ("_relays", frozenset({"_id"}), ()): (ID, "register, heartbeat, watermark, take-over (findAndModify _id + heartbeat)"),
    ("_relays", frozenset({"_id", "heartbeat"}), ()): (ID, "take-over of a silent instance: the _id decides, heartbeat guards"),
    ("_relays", frozenset({"heartbeat"}), ()): ("relays_heartbeat", "recovery timer: silent instances"),
    ("_sequence", frozenset({"_id"}), ()): (ID, "batch tools: sequence / read_all catch-up"),
    ("_sequence", frozenset(), ("_id",)): (ID, "batch tool: verify reads the sequence log in order"),
    ("data_keys", frozenset({"_id"}), ()): (ID, "key ring: create, load, erase"),
    ("schedule", frozenset({"_id"}), ()): (ID, "schedule set / clear"),
    ("schedule", frozenset({"at"}), ("at",)): ("schedule_at", "schedule timer: what is due"),
}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.shapes: dict[tuple[str, frozenset[str], tuple[str, ...]], str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        c, name = event.command, event.command_name
        if name not in ("find", "update", "delete", "findAndModify", "distinct", "count", "aggregate"):
            return
        collection = str(c[name])
        filters: list[dict[str, Any]] = []
        if name == "find":
            filters = [c.get("filter", {})]
        elif name == "update":
            filters = [u["q"] for u in c["updates"]]
        elif name == "delete":
            filters = [d["q"] for d in c["deletes"]]
        elif name in ("findAndModify", "distinct", "count"):
            filters = [c.get("query", {})]
        else:
            filters = [stage["$match"] for stage in c.get("pipeline", []) if "$match" in stage] or [{}]
        sort = tuple(c.get("sort", {}).keys())
        for f in filters:
            self.shapes[(collection, frozenset(f.keys()), sort)] = name

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def known(collection: str, fields: frozenset[str], sort: tuple[str, ...]) -> tuple[str | None, str] | None:
    for (suffix, f, s), answer in QUERIES.items():
        if collection.endswith(suffix) and f == fields and s == sort:
            return answer
    return None


@pytest.fixture
async def recorded(infra: Any, database_prefix: str) -> AsyncIterator[tuple[Any, Recorder]]:
    recorder = Recorder()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[recorder])
    yield client[f"{database_prefix}queries_{new_id()[:6]}"], recorder
    await client.close()


async def exercise(db: Any) -> list[Any]:
    """Everything the store, relay, key ring and schedules do, once."""
    store = MongoEventStore(db, codec=None)
    await store.ensure_indexes()
    other = MongoEventStore(db)
    master = os.urandom(32)
    ring = MongoKeyRing(db["data_keys"], master)
    await ring.load(["participant-a"], create=True)
    await MongoKeyRing(db["data_keys"], master).load(["participant-a"], create=False)
    await ring.erase("participant-a")
    s, t = stream_id("test"), stream_id("test")
    first = await store.append(s, 0, [an_event(s, 1)], cause_id=new_id(), beside={"k1": {"v": 1, "expires_at": datetime.now(UTC) + timedelta(hours=1)}})
    assert await store.find_beside("k1") is not None
    await store.drop_beside(["k1"])
    await store.append(s, 1, [an_event(s, 2)], cause_id=new_id())
    await other.read_stream(s)
    await other.append(s, 2, [an_event(s, 3)], cause_id=new_id())
    with pytest.raises(ConcurrencyConflict):
        await store.append(s, 2, [an_event(s, 4)], cause_id=new_id())
    with pytest.raises(ConcurrencyConflict):
        await MongoEventStore(db).append(s, 0, [an_event(s, 4)], cause_id=new_id(), beside={"k2": {"v": 2}})  # collides after its side document landed
    cause = new_id()
    await store.append(t, 0, [an_event(t, 1)], cause_id=cause)
    u = stream_id("test")
    assert (await store.append(u, 0, [an_event(u, 1)], cause_id=cause)).already_applied  # the cause index answers
    published: list[Any] = []

    class Publisher:
        async def publish(self, records: Any) -> None:
            published.extend(records)

    relay = Relay("q", store, Publisher(), lambda _t: "t", recover_every=0, recover_after=0.01, settle_seconds=0)
    await relay.run_once()
    await store.pending_commit(first.commit_id)
    await asyncio.sleep(0.05)
    await Relay("q2", MongoEventStore(db), Publisher(), lambda _t: "t", recover_every=0, recover_after=0.01, settle_seconds=0).run_once()  # other's commit, left pending
    await store.sequence()
    await store.read_all(0)
    await store.verify()
    await store.stream_ids()
    schedule = MongoSchedule(db["schedule"])
    await schedule.set(Due("k", datetime.now(UTC) - timedelta(seconds=1)))
    assert [d.key for d in await schedule.due(datetime.now(UTC))] == ["k"]
    await schedule.clear("k")
    return [store, schedule]


async def test_every_query_is_one_an_index_serves_on_mongodb_and_ensure_indexes_creates_it(recorded: tuple[Any, Recorder]) -> None:
    db, recorder = recorded
    await exercise(db)
    unknown = {shape: name for shape, name in recorder.shapes.items() if known(*shape) is None}
    assert unknown == {}, "a query not listed in QUERIES (name the index that serves it on MongoDB)"
    unseen = [q for q in QUERIES if not any(c.endswith(q[0]) and f == q[1] and s == q[2] for c, f, s in recorder.shapes)]
    assert unseen == [], "QUERIES lists a query the exercise did not make"
    indexes: dict[str, dict[str, list[str]]] = {}
    for collection in {shape[0] for shape in recorder.shapes}:
        indexes[collection] = {ix["name"]: list(ix["key"].keys()) for ix in await (await db[collection].list_indexes()).to_list()}
    for (collection, fields, sort), _ in recorder.shapes.items():
        index, where = known(collection, fields, sort)  # type: ignore[misc]
        if index is SCAN or index == ID:
            continue
        keys = indexes[collection].get(index)
        assert keys is not None, f"{index} missing on {collection} ({where})"
        wanted = [f for f in (*sort, *sorted(fields - set(sort)))]
        assert set(keys[: len(wanted)]) == set(wanted), f"{index} {keys} does not serve {sorted(fields)} sorted by {sort} ({where})"


def test_the_services_adapters_ask_only_by_id() -> None:
    root = Path(__file__).resolve().parents[3]
    calls = re.compile(
        r"(?:\.(?:find_one|find|update_one|replace_one|delete_one|find_one_and_update|delete_many|update_many|count_documents)"
        r"|\b(?:DeleteOne|DeleteMany|UpdateOne|UpdateMany|ReplaceOne))\((\{[^)]*)"
    )
    offenders = []
    for path in sorted(root.glob("services/*/src/*/adapters/*.py")):
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            for m in calls.finditer(line):
                if not m.group(1).startswith('{"_id"') or re.match(r'\{"_id": *\{ *"\$', m.group(1)):
                    offenders.append(f"{path.relative_to(root)}:{line_no}: {m.group(0)}")
    # the one exception: GridFS's files collection, cleaned by upload date (biometric's timer),
    # served on MongoDB by the index "uploaded_at" that the adapter creates
    allowed = {"blobs.py"}
    assert [o for o in offenders if not any(a in o for a in allowed)] == []
