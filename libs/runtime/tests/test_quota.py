"""Quotas per key and window: the same answers in memory and on the store (FerretDB here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_contracts import new_id
from jmo_eventstore.testing import CommandLog
from jmo_runtime.quota import InMemoryQuota, MongoQuota, quota_key

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def _three_per_hour(quota: Any) -> None:
    key = quota_key(b"k" * 32, "otp-destination", "siti@example.com")
    assert [await quota.take(key, T0 + timedelta(minutes=m)) for m in range(4)] == [True, True, True, False]
    assert await quota.take(quota_key(b"k" * 32, "otp-destination", "budi@example.com"), T0)  # another key is another count
    assert await quota.take(key, T0 + HOUR)  # the next window


def _keys(*values: str) -> list[str]:
    return [quota_key(b"k" * 32, "register", v) for v in values]


async def _each_in_order_stopping_at_the_first_refused(quota: Any) -> None:
    nik, siti, budi = _keys("3201014508900001", "siti@example.com", "budi@example.com")
    assert await quota.take_each([nik, siti], T0)
    assert await quota.take_each([nik, siti], T0)
    assert await quota.take(siti, T0)  # siti used up (3)
    assert not await quota.take_each([nik, siti], T0)  # the NIK's third use is taken, siti's refused
    assert not await quota.take_each([nik, budi], T0)  # the NIK used up: budi is not taken
    assert [await quota.take(budi, T0) for _ in range(4)] == [True, True, True, False]
    assert await quota.take_each([nik, siti], T0 + HOUR)


@pytest.mark.unit
async def test_a_key_is_refused_once_it_was_used_its_limit_in_the_window() -> None:
    await _three_per_hour(InMemoryQuota(3, HOUR))


@pytest.mark.unit
async def test_keys_taken_together_are_taken_in_order_up_to_the_first_refused() -> None:
    await _each_in_order_stopping_at_the_first_refused(InMemoryQuota(3, HOUR))


@pytest.mark.unit
def test_a_quota_key_names_its_kind_and_never_the_value() -> None:
    key = quota_key(b"k" * 32, "register-nik", "3201014508900001")
    assert key.startswith("register-nik:") and "3201014508900001" not in key
    assert key != quota_key(b"x" * 32, "register-nik", "3201014508900001")


@pytest.mark.integration
async def test_the_store_quota_counts_the_same_and_its_documents_expire(mongo_client: Any, run_id: str) -> None:
    collection = mongo_client[f"{run_id}_quota"][f"q{new_id()[:8]}"]
    quota = MongoQuota(collection, 3, HOUR)
    await quota.ensure_indexes()
    await _three_per_hour(quota)
    docs = [d async for d in collection.find({})]
    assert all(str(d["_id"]).split(":")[0] == "otp-destination" and "expires_at" in d for d in docs)


@pytest.fixture
async def counted(infra: Any, run_id: str) -> AsyncIterator[tuple[Any, CommandLog]]:
    log = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, socketTimeoutMS=20_000, event_listeners=[log])
    yield client[f"{run_id}_quota"][f"q{new_id()[:8]}"], log
    await client.close()


@pytest.mark.integration
async def test_keys_taken_together_on_the_store_answer_as_in_memory_in_one_insert_each(counted: tuple[Any, CommandLog]) -> None:
    collection, log = counted
    quota = MongoQuota(collection, 3, HOUR)
    await quota.ensure_indexes()
    nik, siti = _keys("3201014508900001", "siti@example.com")
    log.clear()
    assert await quota.take_each([nik, siti], T0)
    assert log.names == ["insert"] and len(log.of("insert", collection.name)[0]["documents"]) == 2
    await _each_in_order_stopping_at_the_first_refused(MongoQuota(collection.database[f"q{new_id()[:8]}"], 3, HOUR))


@pytest.mark.integration
async def test_uses_are_shared_across_instances_and_concurrent_takes_and_survive_a_restart(mongo_client: Any, run_id: str) -> None:
    """Each instance guesses the next use of a key; the ``_id`` index decides. Twelve takes of one
    key at once over three instances (one of them restarted with nothing remembered): exactly
    the limit granted."""
    collection = mongo_client[f"{run_id}_quota"][f"q{new_id()[:8]}"]
    first, second = MongoQuota(collection, 5, HOUR), MongoQuota(collection, 5, HOUR)
    (key,) = _keys("3201014508900001")
    assert await first.take(key, T0) and await second.take(key, T0)  # second: its guess (1) was taken
    granted = await asyncio.gather(*(q.take(key, T0) for q in [first, second, MongoQuota(collection, 5, HOUR)] * 4))
    assert granted.count(True) == 3
    assert not await MongoQuota(collection, 5, HOUR).take(key, T0)  # a restart remembers nothing, the store does
    assert sorted([d["_id"].rsplit("#", 1)[1] async for d in collection.find({})]) == ["1", "2", "3", "4", "5"]
