"""The commit document shared by every backend: one per decision, holding all its events.

A commit is ``{_id: "<stream>@<expected_version>", stream_id, from_version, to_version, cause_id,
recorded_at, events: [...], event_count, prev_commit, prev_hash, hash}`` plus, once sequenced,
``position`` (global position of its first event) and ``last_position``. Using the expected
version in ``_id`` makes the primary key the optimistic-concurrency check on every backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jmo_contracts import Envelope

from .chain import GENESIS, commit_hash
from .codec import Item, PayloadCodec
from .model import AppendResult, IntegrityProblem, RecordedEvent

Doc = dict[str, Any]

#: The ``_id`` prefix of a decision's side documents (``append(..., beside=...)``), kept with its commit.
BESIDE_PREFIX = "~beside~"
#: Fields of a side document the store sets itself.
RESERVED_BESIDE_FIELDS = frozenset({"_id", "cause_id", "stream_id"})


def commit_id(stream_id: str, expected_version: int) -> str:
    return f"{stream_id}@{expected_version}"


def build_commit(
    *,
    stream_id: str,
    expected_version: int,
    head: Doc | None,
    events: Sequence[Envelope],
    cause_id: str,
    codec: PayloadCodec,
    cause_digest: str | None = None,
) -> Doc:
    """The document for appending ``events`` after ``head`` (``None`` for a new stream)."""
    for e in events:
        if e.stream_id != stream_id:
            raise ValueError(f"event {e.type} belongs to {e.stream_id}, not {stream_id}")
    stored = [_stored_event(e, codec) for e in events]
    recorded_at = datetime.now(UTC).isoformat(timespec="microseconds")
    prev_hash = head["hash"] if head else GENESIS
    doc: Doc = {
        "_id": commit_id(stream_id, expected_version),
        "stream_id": stream_id,
        "from_version": expected_version + 1,
        "to_version": expected_version + len(events),
        "cause_id": cause_id,
        "recorded_at": recorded_at,
        "events": stored,
        "event_count": len(stored),
        "prev_commit": head["_id"] if head else None,
        "prev_hash": prev_hash,
    }
    if cause_digest is not None:  # outside the hash: it identifies the cause, it is not the history
        doc["cause_digest"] = cause_digest
    doc["hash"] = hash_of(doc)
    return doc


def new_items(events: Sequence[Envelope]) -> list[Item]:
    """What a codec prepares for before ``build_commit`` encodes these events."""
    return [(e.stream_id, e.type, e.payload) for e in events]


def stored_items(docs: Iterable[Doc]) -> list[Item]:
    """What a codec prepares for before ``recorded_events`` decodes these commits."""
    return [(doc["stream_id"], stored["type"], stored["payload"]) for doc in docs for stored in doc["events"]]


def hash_of(doc: Doc) -> str:
    return commit_hash(
        stream_id=doc["stream_id"],
        from_version=doc["from_version"],
        to_version=doc["to_version"],
        cause_id=doc["cause_id"],
        recorded_at=doc["recorded_at"],
        events=doc["events"],
        prev_hash=doc["prev_hash"],
    )


def recorded_events(doc: Doc, codec: PayloadCodec, *, after_position: int | None = None, from_version: int = 1) -> list[RecordedEvent]:
    """The events of a commit, decoded, optionally only those after a position or version."""
    out = []
    first_position = doc.get("position")
    for i, stored in enumerate(doc["events"]):
        version = doc["from_version"] + i
        position = None if first_position is None else first_position + i
        if version < from_version or (after_position is not None and position is not None and position <= after_position):
            continue
        payload = codec.decode(doc["stream_id"], stored["type"], stored["payload"])
        envelope = Envelope.model_validate({**stored, "stream_id": doc["stream_id"], "payload": payload})
        out.append(RecordedEvent(envelope=envelope, stream_version=version, position=position, commit_id=doc["_id"], stored_payload=stored["payload"]))
    return out


def appended_events(doc: Doc, events: Sequence[Envelope]) -> tuple[RecordedEvent, ...]:
    """The events just appended as ``doc``, for the relay: the envelopes as given, with the stored
    (sealed) payloads of ``doc`` beside them."""
    return tuple(
        RecordedEvent(envelope=e, stream_version=doc["from_version"] + i, position=None, commit_id=doc["_id"], stored_payload=doc["events"][i]["payload"])
        for i, e in enumerate(events)
    )


def chain_link(doc: Doc) -> Doc:
    """What the chain check needs of a commit once its content was hashed: its versions and links,
    whether its event count matches its versions, and whether its content matches its hash. Small,
    so a scan of a large log keeps one per commit instead of the commit with its events."""
    return {
        "_id": doc["_id"],
        "from_version": doc["from_version"],
        "to_version": doc["to_version"],
        "prev_commit": doc.get("prev_commit"),
        "prev_hash": doc["prev_hash"],
        "hash": doc["hash"],
        "counted": doc["to_version"] - doc["from_version"] + 1 == len(doc["events"]),
        "hashed": hash_of(doc) == doc["hash"],
    }


def verify_chain(stream_id: str, links: Iterable[Doc]) -> list[IntegrityProblem]:
    """Every way a stream's commits (their :func:`chain_link`, in version order) break its hash chain."""
    problems: list[IntegrityProblem] = []
    prev: Doc | None = None
    for link in links:
        expected_from = prev["to_version"] + 1 if prev else 1
        if link["from_version"] != expected_from:
            problems.append(IntegrityProblem(stream_id, link["_id"], f"version gap: expected {expected_from}, found {link['from_version']}"))
        if not link["counted"]:
            problems.append(IntegrityProblem(stream_id, link["_id"], "event count does not match the versions"))
        if link["prev_commit"] != (prev["_id"] if prev else None):
            problems.append(IntegrityProblem(stream_id, link["_id"], "previous-commit link broken"))
        if link["prev_hash"] != (prev["hash"] if prev else GENESIS):
            problems.append(IntegrityProblem(stream_id, link["_id"], "previous hash does not match"))
        if not link["hashed"]:
            problems.append(IntegrityProblem(stream_id, link["_id"], "content does not match its hash"))
        prev = link
    return problems


def _stored_event(e: Envelope, codec: PayloadCodec) -> Doc:
    return {
        "message_id": e.message_id,
        "type": e.type,
        "schema_version": e.schema_version,
        "occurred_at": e.occurred_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "payload": codec.encode(e.stream_id, e.type, e.payload),
    }


def result_of(doc: Doc, *, already: bool) -> AppendResult:
    """The :class:`AppendResult` describing a stored commit."""
    return AppendResult(
        stream_id=doc["stream_id"],
        commit_id=doc["_id"],
        from_version=doc["from_version"],
        to_version=doc["to_version"],
        already_applied=already,
        message_ids=tuple(e["message_id"] for e in doc["events"]),
        cause_digest=doc.get("cause_digest"),
    )


def beside_id(key: str) -> str:
    """The ``_id`` of the side document ``key`` (beside the commits)."""
    return f"{BESIDE_PREFIX}{key}"


def side_documents(beside: Mapping[str, Mapping[str, Any]] | None) -> list[Doc]:
    """The documents ``append(..., beside=...)`` inserts, checked: the store sets ``_id``,
    ``cause_id`` and (never, so that nothing takes them for commits) ``stream_id``."""
    docs: list[Doc] = []
    for key, fields in (beside or {}).items():
        if taken := RESERVED_BESIDE_FIELDS & set(fields):
            raise ValueError(f"side document {key!r} sets fields the store reserves: {sorted(taken)}")
        docs.append({"_id": beside_id(key), "cause_id": beside_id(key), **fields})
    return docs
