"""Quotas per key and window: the same answers in memory and on the store (FerretDB here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jmo_contracts import new_id
from jmo_runtime.quota import InMemoryQuota, MongoQuota, quota_key

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def _three_per_hour(quota: Any) -> None:
    key = quota_key(b"k" * 32, "otp-destination", "siti@example.com")
    assert [await quota.take(key, T0 + timedelta(minutes=m)) for m in range(4)] == [True, True, True, False]
    assert await quota.take(quota_key(b"k" * 32, "otp-destination", "budi@example.com"), T0)  # another key is another count
    assert await quota.take(key, T0 + HOUR)  # the next window


@pytest.mark.unit
async def test_a_key_is_refused_once_it_was_used_its_limit_in_the_window() -> None:
    await _three_per_hour(InMemoryQuota(3, HOUR))


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
