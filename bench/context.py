"""What every suite shares: the database, the broker, and fresh collections and topics on demand."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from pymongo.asynchronous.database import AsyncDatabase

from jmo_eventstore import MongoEventStore

from servers import create_topic


@dataclass
class Bench:
    """One benchmark run's database (dropped at the end) and broker (topics deleted at the end)."""

    db: AsyncDatabase
    bootstrap: str
    run_id: str
    kafka_options: dict = field(default_factory=dict)
    """aiokafka options authenticating the bench's clients (the admin on the embedded, secured broker)."""
    topics: list[str] = field(default_factory=list)
    _counter: itertools.count = field(default_factory=itertools.count)

    async def fresh_store(self, label: str) -> MongoEventStore:
        """An empty ``MongoEventStore`` under a new name, with its indexes."""
        store = MongoEventStore(self.db, f"{label}{next(self._counter)}")
        await store.ensure_indexes()
        return store

    async def drop(self, store: MongoEventStore) -> None:
        """Remove a store's collections, so the next trial's server is not slowed by old data."""
        await store.commits.drop()
        await store.sequence_log.drop()
        await store.relays.drop()

    async def fresh_topic(self, label: str, partitions: int) -> str:
        """A new topic, created explicitly and ready."""
        name = f"{self.run_id}.{label}.{next(self._counter)}"
        await create_topic(self.bootstrap, name, partitions, self.kafka_options)
        self.topics.append(name)
        return name
