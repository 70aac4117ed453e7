"""The audit log: who read a participant's data through the audit tools, and every erasure (SPEC §12).

An event log of its own, beside the services' logs: database ``jmo_audit`` (with JMO_DATABASE_PREFIX),
the ordinary :class:`~jmo_eventstore.MongoEventStore` (so every stream has a hash chain that
``jmo audit verify`` checks), one stream ``audit-<participant_id>`` per participant. It holds no
personal data of the participant (see :mod:`jmo_contracts.audit`), so it is stored as it is and
stays readable after the participant's erasure. Appending is only ever done through the store's
``append``, which makes a recorded access impossible to change or remove without ``verify`` noticing.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, new_id
from jmo_contracts.messages import Event
from jmo_eventstore import ConcurrencyConflict, MongoEventStore, PlainCodec, RecordedEvent
from jmo_runtime import ServiceSettings

#: The name of the audit log where a service name is expected (``jmo audit verify --service audit``).
AUDIT = "audit"
ATTEMPTS = 5


def audit_stream(participant_id: str) -> str:
    return f"audit-{participant_id}"


def who(given: str | None = None) -> str:
    """Who is acting: ``--by``, else JMO_AUDITOR, else the OS user."""
    return given or os.environ.get("JMO_AUDITOR") or getpass.getuser()


def audit_store(client: AsyncMongoClient, settings: ServiceSettings) -> MongoEventStore:
    return MongoEventStore(client[settings.database_for(AUDIT)], name="events", codec=PlainCodec())


@asynccontextmanager
async def open_audit_log(settings: ServiceSettings) -> AsyncIterator[AuditLog]:
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=settings.store_timeout_ms, socketTimeoutMS=settings.store_timeout_ms, appname="jmo-cli")
    try:
        yield AuditLog(audit_store(client, settings))
    finally:
        await client.close()


class AuditLog:
    """Append to and read a participant's audit stream."""

    def __init__(self, store: MongoEventStore) -> None:
        self.store = store
        self._indexed = False

    async def record(self, participant_id: str, fact: Event) -> RecordedEvent:
        """Append ``fact`` to the participant's audit stream (after whatever is there: retried on a
        concurrent append) and return it as stored."""
        if not self._indexed:
            await self.store.ensure_indexes()
            self._indexed = True
        stream = audit_stream(participant_id)
        for _ in range(ATTEMPTS):
            existing = await self.store.read_stream(stream)
            version = existing[-1].stream_version if existing else 0
            envelope = Envelope.wrap(fact, stream_id=stream, correlation_id=new_id())
            try:
                await self.store.append(stream, version, [envelope], cause_id=envelope.message_id)
            except ConcurrencyConflict:
                continue
            return (await self.store.read_stream(stream, version + 1))[0]
        raise ConcurrencyConflict(stream, version)

    async def entries(self, participant_id: str) -> list[RecordedEvent]:
        return await self.store.read_stream(audit_stream(participant_id))
