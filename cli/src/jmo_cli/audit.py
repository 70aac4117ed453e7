"""What an auditor asks of the log: a participant's history, proof of integrity, rebuilt read models."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Collection
from datetime import datetime
from typing import Any

from rich.progress import Progress

from jmo_eventstore import IntegrityProblem, MongoEventStore, RecordedEvent

from . import asof
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


async def streams_by_key(stores: dict[str, MongoEventStore], participant_id: str) -> dict[str, list[str]]:
    """A participant's streams per service, found by key only (see :mod:`jmo_cli.asof`): their
    registration and identity streams, their known sessions and those sessions' selfie checks."""
    identity_events = await asof.read(stores, "identity", f"identity-{participant_id}")
    sessions = await asof.known_sessions(stores, participant_id, identity_events)
    found = {
        "registration": [f"registration-{participant_id}"],
        "identity": [f"identity-{participant_id}"],
        "profile-update": [f"profile-update-{s}" for s in sessions],
        "biometric": [f"biometric-{s}" for s in sessions],
    }
    return {service: streams for service, streams in found.items() if service in stores}


async def history(
    stores: dict[str, MongoEventStore],
    ref: str,
    *,
    scan: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Collection[str] = (),
) -> list[tuple[str, RecordedEvent]]:
    """Every event of a stream (``registration-<id>``) or of a participant (its 32-hex reference),
    from every service, in the order they happened (each stream in version order), optionally only
    those that occurred in ``[since, until]`` and are of one of ``types``.

    A participant's streams are found by key (:func:`streams_by_key`); ``scan`` also reads every
    log whole to find the streams whose events name the participant (notifications), which costs a
    pass over the logs."""
    found: list[tuple[str, RecordedEvent]] = []
    by_key = await streams_by_key(stores, ref) if _REF.match(ref) else {}
    for service, store in stores.items():
        if not _REF.match(ref):
            streams = [ref]
        elif scan:
            streams = sorted(set(by_key.get(service, [])) | set(await participant_streams(store, ref)))
        else:
            streams = by_key.get(service, [])
        for stream in streams:
            found.extend((service, e) for e in await store.read_stream(stream))
    found = [
        (service, e) for service, e in found
        if (since is None or e.envelope.occurred_at >= since) and (until is None or e.envelope.occurred_at <= until) and (not types or e.envelope.type in types)
    ]
    found.sort(key=lambda se: (se[1].envelope.occurred_at, se[1].stream_id, se[1].stream_version))
    return found


def as_json(service: str, event: RecordedEvent) -> dict[str, Any]:
    return {"service": service, "stream_version": event.stream_version, "position": event.position, **event.envelope.model_dump(mode="json")}


async def verify(stores: dict[str, MongoEventStore], bar: Progress | None = None) -> dict[str, list[IntegrityProblem]]:
    """Every hash chain and sequence log checked, per log (the services' and the audit log), the
    logs side by side (one scan each; on FerretDB each takes a core of the server). With ``bar``,
    each log has a task there that counts the commits checked and is marked done when its log is."""

    async def one(name: str, store: MongoEventStore) -> list[IntegrityProblem]:
        if bar is None:
            return await store.verify()
        task = bar.add_task(f"verifying the {name} log", total=None)
        problems = await store.verify(progress=lambda n: bar.advance(task, n))
        checked = next(t.completed for t in bar.tasks if t.id == task)
        bar.update(task, total=checked, description=f"the {name} log: {'ALTERED' if problems else 'intact'}")
        return problems

    found = await asyncio.gather(*(one(name, store) for name, store in stores.items()))
    return dict(zip(stores, found, strict=True))


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
