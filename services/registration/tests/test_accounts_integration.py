"""The NIK claims and KPJ reservations on the real store: concurrent registrations of one NIK,
one winner; a released claim frees the NIK; a KPJ number is reserved once per registration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_registration.adapters.accounts import MongoKpjReservations, MongoNikIndex

pytestmark = pytest.mark.integration

NIK = "3201014508900001"


@pytest.fixture
async def database(infra: Any, database_prefix: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    db = client[f"{database_prefix}accounts_test"]
    yield db
    await client.drop_database(db.name)
    await client.close()


async def test_of_concurrent_claims_on_one_nik_exactly_one_wins_and_a_release_frees_it(database: Any) -> None:
    index = MongoNikIndex(database["nik_index"], bytes(32))
    streams = [f"registration-{i:032x}" for i in range(6)]
    won = await asyncio.gather(*(index.claim(NIK, s) for s in streams))
    assert sum(won) == 1
    winner = streams[won.index(True)]
    assert await index.claim(NIK, winner) is True  # the holder claiming again (a redelivery) keeps it
    loser = next(s for s in streams if s != winner)
    await index.release(NIK, loser)  # not the holder: changes nothing
    assert await index.has_active_account(NIK)
    await index.release(NIK, winner)
    assert not await index.has_active_account(NIK)
    assert await index.claim(NIK, loser) is True
    raw = [d async for d in database["nik_index"].find({})]
    assert all(NIK not in str(d) for d in raw)  # only a keyed hash is stored


async def test_a_kpj_number_is_reserved_once_and_again_for_the_same_registration(database: Any) -> None:
    kpj = MongoKpjReservations(database["kpj_numbers"])
    first = await kpj.reserve("a" * 32, "registration-" + "a" * 32)
    assert await kpj.reserve("a" * 32, "registration-" + "a" * 32) == first
    other = await kpj.reserve("a" * 32, "registration-" + "b" * 32)  # same candidates, another registration
    assert other != first and len(other) == 11


async def test_a_kpj_number_is_kept_only_as_a_keyed_hash_and_a_number_reserved_in_clear_earlier_stays_taken(database: Any) -> None:
    legacy = MongoKpjReservations(database["kpj_numbers"])
    old = await legacy.reserve("c" * 32, "registration-" + "c" * 32)  # written before numbers were hashed
    kpj = MongoKpjReservations(database["kpj_numbers"], bytes(32))

    assert await kpj.reserve("c" * 32, "registration-" + "c" * 32) == old  # its holder still gets it
    other = await kpj.reserve("c" * 32, "registration-" + "d" * 32)
    assert other != old and await kpj.reserve("c" * 32, "registration-" + "d" * 32) == other
    raw = [d async for d in database["kpj_numbers"].find({})]
    assert [d["_id"] for d in raw if other in str(d)] == []  # the new number is nowhere in clear
