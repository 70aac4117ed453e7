"""The command handler on the MongoDB event store: a message that starts a stream is decided without
reading it, and decided again on what the stream holds when it was not new after all."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jmo_contracts import new_id, stream_id
from jmo_eventstore import MongoEventStore
from jmo_eventstore.testing import CommandLog
from jmo_runtime import CommandHandler

from .test_command_handler import NOW, a_command, counter

pytestmark = pytest.mark.integration


async def test_a_new_stream_is_decided_without_a_read_and_a_stream_that_was_not_new_is_decided_on_what_it_holds(infra: Any, database_prefix: str) -> None:
    commands = CommandLog()
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, event_listeners=[commands])
    try:
        db = client[f"{database_prefix}handler_{new_id()[:6]}"]
        this, other = MongoEventStore(db, name="commits"), MongoEventStore(db, name="commits")
        await this.ensure_indexes()

        fresh = stream_id("test")
        handled = await CommandHandler("test", this, counter, clock=lambda: NOW).handle(a_command(fresh), new_stream=True)
        assert handled.events[0].payload["full_name"] == "SITI #1"
        assert "find" not in commands.names

        # another instance started this one: presumed new here, the append collides, the decision is taken again
        taken = stream_id("test")
        await CommandHandler("test", other, counter, clock=lambda: NOW).handle(a_command(taken, name="RIVAL"))
        handled = await CommandHandler("test", this, counter, clock=lambda: NOW).handle(a_command(taken), new_stream=True)
        assert handled.events[0].payload["full_name"] == "SITI #2"
        assert [e.envelope.payload["full_name"] for e in await this.read_stream(taken)] == ["RIVAL #1", "SITI #2"]
    finally:
        await client.close()
