"""The data every benchmark writes: real contract events, and the commit documents the store would make."""

from __future__ import annotations

from dataclasses import dataclass

from jmo_contracts import Envelope, new_id, stream_id
from jmo_eventstore.codec import PlainCodec
from jmo_eventstore.commits import Doc, build_commit
from jmo_eventstore.testing import an_event


@dataclass(frozen=True)
class Append:
    """One call of ``store.append``: what the subject does, and what the baseline's document holds."""

    stream_id: str
    expected_version: int
    events: list[Envelope]
    cause_id: str


def appends(streams: int, commits_per_stream: int, events_per_commit: int) -> list[Append]:
    """Appends to ``streams`` new streams, round-robin (stream 1, 2, ..., n, then 1 again ...)."""
    ids = [stream_id("bench") for _ in range(streams)]
    out = []
    for round_ in range(commits_per_stream):
        for s in ids:
            version = round_ * events_per_commit
            events = [an_event(s, version + i + 1) for i in range(events_per_commit)]
            out.append(Append(s, version, events, new_id()))
    return out


def commit_documents(plan: list[Append]) -> list[Doc]:
    """The documents ``MongoEventStore.append`` inserts for ``plan``: exactly what ``build_commit`` returns
    (the store is insert-only: no ``pending``, no positions)."""
    heads: dict[str, Doc] = {}
    docs = []
    for a in plan:
        doc = build_commit(stream_id=a.stream_id, expected_version=a.expected_version, head=heads.get(a.stream_id), events=a.events, cause_id=a.cause_id, codec=PlainCodec())
        heads[a.stream_id] = doc
        docs.append(doc)
    return docs


def event_count(plan: list[Append]) -> int:
    return sum(len(a.events) for a in plan)
