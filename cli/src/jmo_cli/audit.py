"""What an auditor asks of the log: a participant's history, proof of integrity, rebuilt read models."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from jmo_eventstore import IntegrityProblem, MongoEventStore, RecordedEvent

from .projections import Projection

_REF = re.compile(r"^[0-9a-f]{32}$")
INSERT_CHUNK = 90  # FerretDB v1 mishandles bulk writes of 100 documents or more


async def participant_streams(store: MongoEventStore, ref: str) -> list[str]:
    """Streams of one participant in one log: those named after it (``registration-<ref>``) and
    those whose events name it (pengkinian-data sessions, selfie checks, notifications)."""
    streams = {s for s in await store.stream_ids() if s.endswith("-" + ref)}
    async for event in all_events(store):
        if event.envelope.payload.get("participant_id") == ref:
            streams.add(event.stream_id)
    return sorted(streams)


async def history(stores: dict[str, MongoEventStore], ref: str) -> list[tuple[str, RecordedEvent]]:
    """Every event of a stream (``registration-<id>``) or of a participant (its 32-hex reference),
    from every service, in the order they happened (each stream in version order)."""
    found: list[tuple[str, RecordedEvent]] = []
    for service, store in stores.items():
        streams = await participant_streams(store, ref) if _REF.match(ref) else [ref]
        for stream in streams:
            found.extend((service, e) for e in await store.read_stream(stream))
    found.sort(key=lambda se: (se[1].envelope.occurred_at, se[1].stream_id, se[1].stream_version))
    return found


def as_json(service: str, event: RecordedEvent) -> dict[str, Any]:
    return {"service": service, "stream_version": event.stream_version, "position": event.position, **event.envelope.model_dump(mode="json")}


async def verify(stores: dict[str, MongoEventStore]) -> dict[str, list[IntegrityProblem]]:
    """Every hash chain and sequence log checked, per service."""
    return {service: await store.verify() for service, store in stores.items()}


async def all_events(store: MongoEventStore, page: int = 1000) -> AsyncIterator[RecordedEvent]:
    """Every event of the log in its global order; places what is not yet in that order first
    (``sequence``: a scan of the log, which is what a batch tool may do)."""
    while await store.sequence():
        pass
    after = 0
    while batch := await store.read_all(after, limit=page):
        for event in batch:
            yield event
        after = batch[-1].position or after


async def rebuild(stores: dict[str, MongoEventStore], projection: Projection, progress: Callable[[int], None] = lambda _n: None, *, into: str | None = None) -> int:
    """Drop the read model and fold the logs it reads into it again; returns the number of documents.

    The logs are read one after the other in ``projection.sources`` order, each in its global
    order, which this tool extends first to every commit written so far (it writes to the
    sequence log, never to the commits).
    ``into`` writes another collection of the owning service's database instead (to compare).
    Documents are stored as the service stores them (``projection.at_rest``, with its codec).
    """
    docs: dict[str, dict[str, Any]] = {}
    for source in projection.sources:
        async for event in all_events(stores[source]):
            projection.apply(docs, event)
            progress(1)
    owner = stores[projection.service]
    values = [await projection.at_rest(owner.codec, d) for d in docs.values()] if projection.at_rest else list(docs.values())
    collection = owner.commits.database[into or projection.collection]
    await collection.drop()
    for i in range(0, len(values), INSERT_CHUNK):
        await collection.insert_many(values[i : i + INSERT_CHUNK])
    return len(values)
