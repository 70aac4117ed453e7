"""The outbox of sealed codes on the real store (FerretDB): drops are deleted in batches, one
command each, by ``_id``; a dropped code is gone for this process at once, and a code a crash left
behind is published again only under its one message id."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, new_id
from jmo_contracts.common import OtpChannel
from jmo_contracts.identity import OtpIssued, OtpPurpose
from jmo_identity.adapters.outbox import DROP_BATCH, MongoSealedCodes
from jmo_eventstore.testing import CommandLog
from jmo_identity.application.otp_delivery import Drawn, OtpCodes, SealedCode, delivery_request_id

pytestmark = pytest.mark.integration

HOUR = 3600.0  # no test waits for the timer: the batch size, a flush or a close deletes
PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
async def outbox(infra: Any, database_prefix: str) -> AsyncIterator[tuple[Any, CommandLog]]:
    commands = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[commands])
    yield client[f"{database_prefix}outbox_{new_id()[:8]}"]["otp_outbox"], commands
    await client.close()


def deletes(commands: CommandLog) -> list[list[dict[str, Any]]]:
    """The filter of each statement of each ``delete`` command sent to the outbox."""
    return [[d["q"] for d in c["deletes"]] for c in commands.of("delete", "otp_outbox")]


async def kept(codes: MongoSealedCodes, n: int) -> list[str]:
    ids = [new_id() for _ in range(n)]
    for otp_id in ids:
        await codes.keep(SealedCode(otp_id, "c1phertext", "d1"), NOW + timedelta(hours=1))
    return ids


async def test_drops_are_deleted_in_one_command_once_a_batch_waits_and_the_rest_on_close(outbox: tuple[Any, CommandLog]) -> None:
    collection, commands = outbox
    codes = MongoSealedCodes(collection, drop_interval=HOUR)
    ids = await kept(codes, DROP_BATCH + 6)
    for otp_id in ids[: DROP_BATCH - 1]:
        await codes.drop([otp_id])  # one code per handled message, as OtpCodes.deliver drops them
    assert deletes(commands) == [] and await collection.count_documents({}) == len(ids)  # noted, not deleted yet
    assert await codes.find(ids[0]) is None  # but gone for this process already
    await codes.drop([ids[DROP_BATCH - 1]])
    await codes._drops.flusher.idle()  # the batch is full: written without waiting for the timer
    assert [len(c) for c in deletes(commands)] == [DROP_BATCH]
    for otp_id in ids[DROP_BATCH:]:
        await codes.drop([otp_id])
    await codes.close()  # the tail on stop
    assert [len(c) for c in deletes(commands)] == [DROP_BATCH, 6] and await collection.count_documents({}) == 0
    assert all(list(q) == ["_id"] and isinstance(q["_id"], str) for c in deletes(commands) for q in c)  # each by _id: what FerretDB serves from its index


async def test_a_large_batch_is_deleted_in_chunks_below_a_hundred(outbox: tuple[Any, CommandLog]) -> None:
    collection, commands = outbox
    codes = MongoSealedCodes(collection, drop_interval=HOUR)
    ids = await kept(codes, 150)
    await codes.drop(ids)
    await codes.close()
    assert await collection.count_documents({}) == 0
    assert sum(len(c) for c in deletes(commands)) == 150 and all(len(c) < 100 for c in deletes(commands))


async def test_a_code_a_crash_left_in_the_outbox_is_published_again_under_the_same_message_id(outbox: tuple[Any, CommandLog]) -> None:
    collection, _ = outbox
    published: list[Envelope] = []

    async def publish(envelope: Envelope) -> None:
        published.append(envelope)

    def otp_codes(store: MongoSealedCodes) -> OtpCodes:
        return OtpCodes(
            code_length=6, hmac_key=secrets.token_bytes(32), hmac_key_id="h1", delivery_key=secrets.token_bytes(32), delivery_key_id="d1",
            outbox=store, publish=publish, clock=lambda: NOW,
        )

    first = MongoSealedCodes(collection, drop_interval=HOUR)
    drawn = Drawn()
    code = await otp_codes(first).draw(PID, drawn)
    issued = OtpIssued(
        participant_id=PID, otp_id=code.otp_id, purpose=OtpPurpose.REGISTRATION, channel=OtpChannel.EMAIL, destination="siti@example.com",
        destination_masked="s**i@example.com", issued_at=NOW, expires_at=NOW + timedelta(minutes=5), code_hmac=code.code_hmac, hmac_key_id="h1", max_attempts=5,
    )
    event = Envelope.wrap(issued, stream_id=f"identity-{PID}", correlation_id=new_id())
    await otp_codes(first).deliver((event,), drawn)
    await otp_codes(first).deliver((event,), Drawn())  # the message redelivered to this process: dropped here already, not published again
    assert len(published) == 1

    # the process dies before its drop is written; the message comes back to another instance
    restarted = MongoSealedCodes(collection, drop_interval=HOUR)
    await otp_codes(restarted).deliver((event,), Drawn())
    assert [p.message_id for p in published] == [delivery_request_id(code.otp_id)] * 2  # one id: the notification's claim sends it once
    assert published[0].payload == published[1].payload
    await restarted.close()
    assert await restarted.find(code.otp_id) is None and await collection.count_documents({}) == 0
