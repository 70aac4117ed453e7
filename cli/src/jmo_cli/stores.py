"""Opening the five services' event logs from the command line (same settings as the services)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo import AsyncMongoClient

from jmo_contracts import topics
from jmo_eventstore import MongoEventStore
from jmo_runtime import ServiceSettings
from jmo_runtime.service import personal_data_codec


@asynccontextmanager
async def open_stores(settings: ServiceSettings, only: str | None = None) -> AsyncIterator[dict[str, MongoEventStore]]:
    """Every service's store (or just ``only``), read-only in spirit: the CLI appends nothing.
    With JMO_DATA_KEY set (as for the services), personal fields are decrypted; without it they
    stay as stored (encrypted)."""
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=settings.store_timeout_ms, socketTimeoutMS=settings.store_timeout_ms, appname="jmo-cli")
    try:
        names = [only] if only else list(topics.SERVICES)
        databases = {name: client[settings.database_for(name)] for name in names}
        yield {name: MongoEventStore(db, name="events", codec=personal_data_codec(db, settings)) for name, db in databases.items()}
    finally:
        await client.close()
