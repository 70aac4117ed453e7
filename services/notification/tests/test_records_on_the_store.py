"""The contact directory and the delivery claims on the real store (FerretDB or MongoDB)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_eventstore import MongoEventStore
from jmo_eventstore.testing import CommandLog, an_event
from jmo_notification.adapters.records import Claim, MongoClaims, MongoDirectory
from jmo_notification.domain.notices import Contact

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def database(infra: Any, database_prefix: str) -> Any:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    yield client[f"{database_prefix}notification_records_{secrets.token_hex(3)}"]
    await client.close()


async def test_contacts_are_kept_sealed_and_come_back_in_clear(database: Any) -> None:
    key = secrets.token_bytes(32)
    directory = MongoDirectory(database["contacts"], key)
    pid = secrets.token_hex(16)
    await directory.remember(Contact(pid, "siti.aminah@example.com", "+6281234567890", "sms"), NOW)
    raw = await database["contacts"].find_one({"_id": pid})
    assert "siti.aminah" not in str(raw) and "81234567890" not in str(raw)
    assert await directory.find(pid) == Contact(pid, "siti.aminah@example.com", "+6281234567890", "sms")
    await directory.remember(Contact(pid, "siti.baru@example.com", "+6281234567890", "email"), NOW)
    assert (await directory.find(pid)).email == "siti.baru@example.com"  # type: ignore[union-attr]
    assert await directory.find(secrets.token_hex(16)) is None


async def test_a_claim_is_won_once_waits_for_a_fresh_lease_is_taken_over_after_it_and_ends_with_its_outcome(database: Any) -> None:
    claims = MongoClaims(database["deliveries"])
    nid = secrets.token_hex(16)
    assert (await claims.claim(nid, "a", NOW, LEASE)).claim is Claim.NEW
    busy = await claims.claim(nid, "b", NOW + timedelta(seconds=1), LEASE)
    assert busy.claim is Claim.BUSY and busy.retry_at == NOW + LEASE
    assert (await claims.claim(nid, "a", NOW + timedelta(seconds=2), LEASE)).claim is Claim.TAKEN_OVER  # its own, redelivered
    assert (await claims.claim(nid, "b", NOW + timedelta(seconds=40), LEASE)).claim is Claim.TAKEN_OVER  # stale
    stream = f"notification-{nid}"  # the outcome is recorded in the service's log, then the claim settled
    await MongoEventStore(database).append(stream, 0, [an_event(stream)], cause_id=nid)
    await claims.settle(nid, "sent", NOW + timedelta(seconds=41))
    assert (await claims.claim(nid, "c", NOW + timedelta(hours=1), LEASE)).claim is Claim.DONE


async def test_claims_made_at_once_share_an_insert_and_each_is_still_decided_by_its_own_id(infra: Any, database: Any) -> None:
    counter = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[counter])
    try:
        claims = MongoClaims(client[database.name]["deliveries"])
        held = secrets.token_hex(16)
        assert (await claims.claim(held, "a", NOW, LEASE)).claim is Claim.NEW
        counter.clear()
        fresh = [secrets.token_hex(16) for _ in range(3)]
        results = await asyncio.gather(*(claims.claim(nid, "b", NOW + timedelta(seconds=1), LEASE) for nid in [fresh[0], held, *fresh[1:]]))
        assert [r.claim for r in results] == [Claim.NEW, Claim.BUSY, Claim.NEW, Claim.NEW]  # the held one collided alone
        inserts = counter.of("insert", "deliveries")
        assert [[d["_id"] for d in i["documents"]] for i in inserts] == [[fresh[0]], [held, *fresh[1:]], fresh[1:]]  # sent again after the collision
        assert {d["_id"]: d["owner"] for d in await database["deliveries"].find({}).to_list()} == {held: "a", **{nid: "b" for nid in fresh}}
    finally:
        await client.close()
