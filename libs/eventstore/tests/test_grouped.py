"""Group commit (:class:`GroupedInserts`): each caller sees what its own ordered insert would have
done, whatever else shared the command. Against a collection that inserts in memory the way an
ordered ``insert`` does (stop at the first duplicate ``_id``); the real store is in
``test_mongo_store.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError

from jmo_eventstore.grouped import GroupedInserts


class OrderedCollection:
    """``insert_many(ordered=True)`` on a dict: documents land in order up to the first duplicate
    ``_id``, which is reported by its index in the command, as the server does. Each command takes
    a few turns of the loop, like a round trip, so callers arriving meanwhile must wait."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.commands: list[list[str]] = []
        #: A command carrying one of these ``_id`` fails as a dropped connection would.
        self.dropped_with: set[str] = set()

    async def insert_many(self, docs: Sequence[dict[str, Any]], *, ordered: bool) -> None:
        assert ordered
        self.commands.append([d["_id"] for d in docs])
        for _ in range(3):
            await asyncio.sleep(0)
        if self.dropped_with & set(self.commands[-1]):
            raise AutoReconnect("connection closed")
        for i, doc in enumerate(docs):
            if doc["_id"] in self.docs:
                raise BulkWriteError({"writeErrors": [{"index": i, "code": 11000, "errmsg": "duplicate key"}], "nInserted": i})
            self.docs[doc["_id"]] = dict(doc)


def docs(*ids: str) -> list[dict[str, Any]]:
    return [{"_id": i} for i in ids]


async def outcome(grouped: GroupedInserts, batch: list[dict[str, Any]]) -> int | str | None:
    """None: all landed; the refused document's index; or the name of another error."""
    try:
        await grouped.insert(batch)
    except BulkWriteError as e:
        [refused] = e.details["writeErrors"]
        return refused["index"]
    except Exception as e:  # noqa: BLE001 - the test compares what each caller saw
        return type(e).__name__
    return None


async def test_callers_that_arrive_while_an_insert_is_in_flight_share_the_next_command() -> None:
    collection = OrderedCollection()
    grouped = GroupedInserts(collection, max_docs=90)  # type: ignore[arg-type]
    results = await asyncio.gather(*(outcome(grouped, docs(f"slot{i}", f"commit{i}")) for i in range(5)))
    assert results == [None] * 5
    assert collection.commands == [["slot0", "commit0"], ["slot1", "commit1", "slot2", "commit2", "slot3", "commit3", "slot4", "commit4"]]
    assert grouped.sizes == {1: 1, 4: 1}
    assert await outcome(grouped, docs("alone")) is None  # nothing in flight: out at once, on its own
    assert collection.commands[-1] == ["alone"]


async def test_a_refused_document_fails_only_its_caller_and_the_callers_after_it_are_sent_again() -> None:
    collection = OrderedCollection()
    collection.docs["taken"] = {"_id": "taken"}
    grouped = GroupedInserts(collection, max_docs=90)  # type: ignore[arg-type]
    results = await asyncio.gather(
        outcome(grouped, docs("a0", "a1")), outcome(grouped, docs("b0", "b1")), outcome(grouped, docs("c0", "taken", "c2")), outcome(grouped, docs("d0", "d1")),
    )
    assert results == [None, None, 1, None]  # c's own index of its refused document
    assert collection.commands == [["a0", "a1"], ["b0", "b1", "c0", "taken", "c2", "d0", "d1"], ["d0", "d1"]]
    assert set(collection.docs) == {"taken", "a0", "a1", "b0", "b1", "c0", "d0", "d1"}  # c0 landed before the refusal, c2 never


async def test_an_error_that_says_nothing_of_what_landed_reaches_every_caller_of_that_command_only() -> None:
    collection = OrderedCollection()
    collection.dropped_with = {"b"}
    grouped = GroupedInserts(collection, max_docs=90)  # type: ignore[arg-type]
    results = await asyncio.gather(outcome(grouped, docs("a")), outcome(grouped, docs("b")), outcome(grouped, docs("c")))
    assert results == [None, "AutoReconnect", "AutoReconnect"]
    assert collection.commands == [["a"], ["b", "c"]]
    assert await outcome(grouped, docs("d")) is None  # and the next caller is served
    assert set(collection.docs) == {"a", "d"}


async def test_grouped_commands_stay_within_max_docs_and_never_split_a_caller() -> None:
    collection = OrderedCollection()
    grouped = GroupedInserts(collection, max_docs=5)  # type: ignore[arg-type]
    await asyncio.gather(*(grouped.insert(docs(f"s{i}", f"c{i}")) for i in range(7)))
    assert [len(c) for c in collection.commands] == [2, 4, 4, 4]
    assert len(collection.docs) == 14


async def test_a_caller_cancelled_before_its_documents_are_sent_inserts_nothing() -> None:
    collection = OrderedCollection()
    grouped = GroupedInserts(collection, max_docs=90)  # type: ignore[arg-type]
    first = asyncio.create_task(grouped.insert(docs("a")))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(grouped.insert(docs("b")))
    after = asyncio.create_task(grouped.insert(docs("c")))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(first, after, return_exceptions=True)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert set(collection.docs) == {"a", "c"}
    assert collection.commands == [["a"], ["c"]]


@settings(max_examples=150, deadline=None)
@given(
    existing=st.sets(st.sampled_from("abcdefgh"), max_size=3),
    callers=st.lists(st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=4), min_size=1, max_size=8),
    max_docs=st.integers(min_value=1, max_value=12),
)
def test_grouping_changes_nothing_any_caller_sees(existing: set[str], callers: list[list[str]], max_docs: int) -> None:
    """The outcome of every caller and the documents that land are those of the same inserts sent
    one at a time, in the order the callers arrived."""

    async def one_at_a_time() -> tuple[list[int | str | None], set[str]]:
        collection = OrderedCollection()
        collection.docs.update({i: {"_id": i} for i in existing})
        results = []
        for ids in callers:
            grouped = GroupedInserts(collection, max_docs=max_docs)  # type: ignore[arg-type]
            results.append(await outcome(grouped, docs(*ids)))
        return results, set(collection.docs)

    async def concurrently() -> tuple[list[int | str | None], set[str]]:
        collection = OrderedCollection()
        collection.docs.update({i: {"_id": i} for i in existing})
        grouped = GroupedInserts(collection, max_docs=max_docs)  # type: ignore[arg-type]
        results = await asyncio.gather(*(outcome(grouped, docs(*ids)) for ids in callers))
        assert len(collection.commands) <= len(callers)  # every command answers at least one caller
        return list(results), set(collection.docs)

    assert asyncio.run(concurrently()) == asyncio.run(one_at_a_time())


async def test_insert_one_answers_a_taken_key_as_insert_one_does() -> None:
    collection = OrderedCollection()
    grouped = GroupedInserts(collection, max_docs=90)  # type: ignore[arg-type]
    await grouped.insert_one({"_id": "a"})
    results = await asyncio.gather(grouped.insert_one({"_id": "b"}), grouped.insert_one({"_id": "a"}), grouped.insert_one({"_id": "c"}), return_exceptions=True)
    assert results[0] is None and isinstance(results[1], DuplicateKeyError) and results[2] is None
    assert set(collection.docs) == {"a", "b", "c"}

