"""The outbox of sealed codes on the real store (FerretDB): a code is written in the insert of the
decision that issues it (no command of its own); drops are deleted in batches, one command each,
by ``_id``; a dropped code is gone for this process at once, and a code a crash left behind is
published again only under its one message id. Codes an earlier version kept in ``otp_outbox``
are still found and dropped there."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, new_id
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import OtpIssued, OtpPurpose
from jmo_contracts.registration import ParticipantRegistered
from jmo_eventstore import MongoEventStore
from jmo_eventstore.mongo import beside_id, slot_id
from jmo_eventstore.testing import CommandLog, an_event
from jmo_identity.adapters.outbox import DROP_BATCH, StoreSealedCodes, outbox_key
from jmo_identity.application.otp_delivery import Drawn, OtpCodes, SealedCode, delivery_request_id
from jmo_identity.application.verification import NikChecks
from jmo_identity.domain.identity import identity
from jmo_identity.domain.otp import OtpPolicy
from jmo_registries import identities, population_registry
from jmo_runtime import CommandHandler

pytestmark = pytest.mark.integration

HOUR = 3600.0  # no test waits for the timer: the batch size, a flush or a close deletes
PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
async def db(infra: Any, database_prefix: str) -> AsyncIterator[tuple[Any, CommandLog]]:
    commands = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[commands])
    yield client[f"{database_prefix}outbox_{new_id()[:8]}"], commands
    await client.close()


def deletes(commands: CommandLog, collection: str = "events_commits") -> list[list[Any]]:
    """The ``_id``s each ``delete`` command sent to ``collection`` names. Each statement must be
    ``{_id: {$in: [...]}}``: by ``_id`` only, what the ``_id`` index serves."""
    named: list[list[Any]] = []
    for command in commands.of("delete", collection):
        assert all(list(d["q"]) == ["_id"] and list(d["q"]["_id"]) == ["$in"] for d in command["deletes"]), command["deletes"]
        named.append([i for d in command["deletes"] for i in d["q"]["_id"]["$in"]])
    return named


async def kept(store: MongoEventStore, codes: StoreSealedCodes, n: int) -> list[str]:
    """``n`` codes, each kept beside a decision of its own (as each OtpIssued keeps its code)."""
    ids = [new_id() for _ in range(n)]
    for otp_id in ids:
        s = f"identity-{new_id()}"
        await store.append(s, 0, [an_event(s)], cause_id=new_id(), beside=dict([codes.beside(SealedCode(otp_id, "c1phertext", "d1"), NOW + timedelta(hours=1))]))
    return ids


def otp_codes(outbox: StoreSealedCodes, published: list[Envelope], delivery_key: bytes = b"k" * 32) -> OtpCodes:
    async def publish(envelope: Envelope) -> None:
        published.append(envelope)

    return OtpCodes(
        code_length=6, hmac_key=secrets.token_bytes(32), hmac_key_id="h1", delivery_key=delivery_key, delivery_key_id="d1",
        outbox=outbox, publish=publish, clock=lambda: NOW,
    )


def issued_event(otp_id: str, code_hmac: str = "0" * 64) -> Envelope:
    issued = OtpIssued(
        participant_id=PID, otp_id=otp_id, purpose=OtpPurpose.REGISTRATION, channel=OtpChannel.EMAIL, destination="siti@example.com",
        destination_masked="s**i@example.com", issued_at=NOW, expires_at=NOW + timedelta(minutes=5), code_hmac=code_hmac, hmac_key_id="h1", max_attempts=5,
    )
    return Envelope.wrap(issued, stream_id=f"identity-{PID}", correlation_id=new_id())


async def test_a_registration_whose_decision_issues_a_code_writes_the_decision_and_the_code_in_one_insert(db: tuple[Any, CommandLog]) -> None:
    database, commands = db
    store = MongoEventStore(database)
    await store.ensure_indexes()
    outbox, published = StoreSealedCodes(store, legacy=database["otp_outbox"], drop_interval=HOUR), []
    assert await outbox.ensure_indexes() is False and "otp_outbox" not in await database.list_collection_names()  # a fresh deployment gets no legacy collection
    checks = NikChecks(
        decisions=CommandHandler("identity", store, identity, clock=lambda: NOW), registry=population_registry(None, timeout=1, breaker_cooldown=1),
        codes=otp_codes(outbox, published), policy=OtpPolicy(), retry_in=timedelta(seconds=1),
    )

    def registration() -> Envelope:
        citizen, pid = identities("BPU", 1)[0], new_id()
        event = ParticipantRegistered(
            participant_id=pid, category=Category.BPU, nik=citizen["nik"], full_name=citizen["full_name"], email=f"p{pid[:8]}@example.com",
            phone="+6281234567890", otp_channel=OtpChannel.EMAIL, birth_date=date.fromisoformat(citizen["birth_date"]), gender="M",
        )
        return Envelope.wrap(event, stream_id=f"registration-{pid}", correlation_id=new_id())

    await checks.check(registration())  # the instance's first append registers it (once per process)
    commands.clear()
    arrival = registration()
    await checks.check(arrival)

    assert commands.names == ["insert"]  # the decision and its code: one command, no outbox insert of its own
    [insert] = commands.of("insert", "events_commits")
    [otp_id] = [p.payload["otp_id"] for p in published if p.payload["participant_id"] == arrival.payload["participant_id"]]
    commit = f"identity-{arrival.payload['participant_id']}@0"
    assert [d["_id"] for d in insert["documents"]] == [beside_id(outbox_key(otp_id)), slot_id(store.instance, 1), commit]
    assert [e["type"] for e in insert["documents"][2]["events"]] == ["NikVerified", "OtpIssued"]
    assert insert["documents"][0]["ciphertext"] == published[-1].payload["code_ciphertext"]  # sealed, as delivered
    await outbox.close()
    assert deletes(commands) == [[beside_id(outbox_key(p.payload["otp_id"])) for p in published]]  # both dropped in one command, by _id
    assert await store.find_beside(outbox_key(otp_id)) is None and await store.verify() == []


async def test_drops_are_deleted_in_one_command_once_a_batch_waits_and_the_rest_on_close(db: tuple[Any, CommandLog]) -> None:
    database, commands = db
    store = MongoEventStore(database)
    codes = StoreSealedCodes(store, drop_interval=HOUR)
    ids = await kept(store, codes, DROP_BATCH + 6)
    for otp_id in ids[: DROP_BATCH - 1]:
        await codes.drop([otp_id])  # one code per handled message, as OtpCodes.deliver drops them
    assert deletes(commands) == [] and all([await store.find_beside(outbox_key(i)) is not None for i in ids])  # noted, not deleted yet
    assert await codes.find(ids[0]) is None  # but gone for this process already
    await codes.drop([ids[DROP_BATCH - 1]])
    await codes._drops.flusher.idle()  # the batch is full: written without waiting for the timer
    assert [len(c) for c in deletes(commands)] == [DROP_BATCH]
    for otp_id in ids[DROP_BATCH:]:
        await codes.drop([otp_id])
    await codes.close()  # the tail on stop
    assert [len(c) for c in deletes(commands)] == [DROP_BATCH, 6] and [await store.find_beside(outbox_key(i)) for i in ids] == [None] * len(ids)
    assert all(isinstance(i, str) for c in deletes(commands) for i in c)  # string _ids: what the (patched) FerretDB serves from its index


async def test_a_large_batch_is_deleted_in_chunks_below_a_hundred(db: tuple[Any, CommandLog]) -> None:
    database, commands = db
    store = MongoEventStore(database)
    codes = StoreSealedCodes(store, drop_interval=HOUR)
    ids = await kept(store, codes, 150)
    await codes.drop(ids)
    await codes.close()
    assert [await store.find_beside(outbox_key(i)) for i in ids] == [None] * 150
    assert sum(len(c) for c in deletes(commands)) == 150 and all(len(c) < 100 for c in deletes(commands))


async def test_a_code_a_crash_left_in_the_outbox_is_published_again_under_the_same_message_id(db: tuple[Any, CommandLog]) -> None:
    database, _ = db
    published: list[Envelope] = []
    store = MongoEventStore(database)
    first = StoreSealedCodes(store, drop_interval=HOUR)
    drawn = Drawn()
    code = await otp_codes(first, published).draw(PID, drawn)
    event = issued_event(code.otp_id, code.code_hmac)
    await store.append(event.stream_id, 0, [event], cause_id=new_id(), beside=otp_codes(first, published).beside(drawn)([event.open()]))
    await otp_codes(first, published).deliver((event,), drawn)
    await otp_codes(first, published).deliver((event,), Drawn())  # the message redelivered to this process: dropped here already, not published again
    assert len(published) == 1

    # the process dies before its drop is written; the message comes back to another instance
    restarted = StoreSealedCodes(MongoEventStore(database), drop_interval=HOUR)
    await otp_codes(restarted, published).deliver((event,), Drawn())
    assert [p.message_id for p in published] == [delivery_request_id(code.otp_id)] * 2  # one id: the notification's claim sends it once
    assert published[0].payload == published[1].payload
    await restarted.close()
    assert await restarted.find(code.otp_id) is None and await store.find_beside(outbox_key(code.otp_id)) is None


async def test_a_code_an_earlier_version_kept_in_its_own_collection_is_still_published_and_dropped_there(db: tuple[Any, CommandLog]) -> None:
    database, commands = db
    legacy = database["otp_outbox"]
    otp_id = new_id()
    await legacy.insert_one({"_id": otp_id, "ciphertext": "c1phertext", "key_id": "d1", "expires_at": NOW + timedelta(hours=1)})  # as the old version kept it
    outbox, published = StoreSealedCodes(MongoEventStore(database), legacy=legacy, drop_interval=HOUR), []
    await outbox.ensure_indexes()
    await otp_codes(outbox, published).deliver((issued_event(otp_id),), Drawn())  # its message redelivered to the new version
    assert [(p.message_id, p.payload["code_ciphertext"]) for p in published] == [(delivery_request_id(otp_id), "c1phertext")]
    await outbox.close()
    assert await legacy.find_one({"_id": otp_id}) is None and deletes(commands, "otp_outbox") == [[otp_id]]
