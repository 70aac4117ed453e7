"""Opening the five services' event logs from the command line (same settings as the services)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo import AsyncMongoClient

from jmo_contracts import topics
from jmo_eventstore import MongoEventStore
from jmo_runtime import ServiceSettings


@asynccontextmanager
async def open_stores(settings: ServiceSettings, only: str | None = None) -> AsyncIterator[dict[str, MongoEventStore]]:
    """Every service's store (or just ``only``), read-only in spirit: the CLI appends nothing."""
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=settings.store_timeout_ms, socketTimeoutMS=settings.store_timeout_ms, appname="jmo-cli")
    try:
        names = [only] if only else list(topics.SERVICES)
        yield {name: MongoEventStore(client[settings.database_for(name)], name="events") for name in names}
    finally:
        await client.close()
