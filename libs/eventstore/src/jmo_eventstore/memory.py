"""In-memory event store: the same semantics as the MongoDB store, for unit and component tests."""

from __future__ import annotations

import asyncio
import copy
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jmo_contracts import Envelope

from .codec import PayloadCodec, PlainCodec
from .commits import RESERVED_BESIDE_FIELDS, Doc, appended_events, beside_id, build_commit, chain_link, new_items, recorded_events, result_of, side_documents, stored_items, verify_chain
from .model import AppendResult, ConcurrencyConflict, IntegrityProblem, PendingCommit, RecordedEvent


class InMemoryEventStore:
    """Holds commit documents in dicts; positions are assigned when :meth:`sequence` runs. The
    outbox is a dict of commit ids with the time each was appended; side documents are a dict by
    key (``expires_at`` is not acted on: nothing here outlives the process)."""

    def __init__(self, codec: PayloadCodec | None = None) -> None:
        self.codec = codec or PlainCodec()
        self.commits: dict[str, Doc] = {}  # by _id, insertion-ordered
        self._streams: dict[str, list[str]] = {}
        self._causes: dict[str, str] = {}
        self._pending: list[str] = []
        self._next_position = 1
        self._lock = asyncio.Lock()
        self.outbox: dict[str, float] = {}
        self._queue: deque[PendingCommit] = deque()
        self.appended = asyncio.Event()
        self.beside: dict[str, dict[str, Any]] = {}

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[Envelope], *, cause_id: str, cause_digest: str | None = None,
        beside: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> AppendResult:
        if not events:
            raise ValueError("nothing to append")
        side = side_documents(beside)
        await self.codec.prepare(new_items(events), writing=True)
        async with self._lock:
            if (done := self._result_of_cause(cause_id, already=True)) is not None:
                return done
            ids = self._streams.get(stream_id, [])
            head = self.commits[ids[-1]] if ids else None
            actual = head["to_version"] if head else 0
            if actual != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version, actual)
            doc = build_commit(stream_id=stream_id, expected_version=expected_version, head=head, events=events, cause_id=cause_id, codec=self.codec, cause_digest=cause_digest)
            if taken := [d["_id"] for d in side if d["_id"] in self.beside]:
                raise KeyError(f"side documents already kept: {taken}")
            self.beside.update((d["_id"], d) for d in side)
            self.commits[doc["_id"]] = doc
            self._streams.setdefault(stream_id, []).append(doc["_id"])
            self._causes[cause_id] = doc["_id"]
            self._pending.append(doc["_id"])
            self.outbox[doc["_id"]] = time.monotonic()
            self._queue.append(PendingCommit(doc["_id"], stream_id, doc["prev_commit"], appended_events(doc, events)))
            self.appended.set()
            return result_of(doc, already=False)

    async def find_beside(self, key: str) -> dict[str, Any] | None:
        doc = self.beside.get(beside_id(key))
        return None if doc is None else {k: v for k, v in doc.items() if k not in RESERVED_BESIDE_FIELDS}

    async def drop_beside(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.beside.pop(beside_id(key), None)

    async def heartbeat(self) -> None:
        pass

    async def appended_commits(self, limit: int) -> list[PendingCommit]:
        out: list[PendingCommit] = []
        while self._queue and len(out) < limit:
            out.append(self._queue.popleft())
        return out

    async def pending_commits(self, *, older_than: float, limit: int) -> list[PendingCommit]:
        cutoff = time.monotonic() - older_than
        ids = [c for c, at in self.outbox.items() if at < cutoff and c in self.commits][:limit]
        docs = sorted((self.commits[c] for c in ids), key=lambda d: (d["stream_id"], d["from_version"]))
        return [await self._pending_of(d) for d in docs]

    async def pending_commit(self, commit: str) -> PendingCommit | None:
        if commit not in self.outbox or commit not in self.commits:
            return None
        return await self._pending_of(self.commits[commit])

    async def settle(self, commits: Sequence[str]) -> None:
        for c in commits:
            self.outbox.pop(c, None)

    async def _pending_of(self, doc: Doc) -> PendingCommit:
        await self.codec.prepare(stored_items([doc]), writing=False)
        return PendingCommit(doc["_id"], doc["stream_id"], doc["prev_commit"], tuple(recorded_events(doc, self.codec)))

    async def read_stream(self, stream_id: str, from_version: int = 1, *, cached: bool = False, presume_new: bool = False) -> list[RecordedEvent]:  # noqa: ARG002 - reads here are exact and free
        docs = [d for d in (self.commits[cid] for cid in self._streams.get(stream_id, [])) if d["to_version"] >= from_version]
        await self.codec.prepare(stored_items(docs), writing=False)
        out: list[RecordedEvent] = []
        for doc in docs:
            out.extend(recorded_events(doc, self.codec, from_version=from_version))
        return out

    async def sequence(self, max_commits: int = 1000) -> int:
        async with self._lock:
            batch, self._pending = self._pending[:max_commits], self._pending[max_commits:]
            for cid in batch:
                doc = self.commits[cid]
                doc["position"] = self._next_position
                doc["last_position"] = self._next_position + doc["event_count"] - 1
                self._next_position += doc["event_count"]
            return len(batch)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        docs = sorted((d for d in self.commits.values() if d.get("last_position", 0) > after_position), key=lambda d: d["position"])
        await self.codec.prepare(stored_items(docs), writing=False)
        out: list[RecordedEvent] = []
        for doc in docs:
            out.extend(recorded_events(doc, self.codec, after_position=after_position))
            if len(out) >= limit:
                break
        return out[:limit]

    async def find_cause(self, cause_id: str) -> AppendResult | None:
        return self._result_of_cause(cause_id, already=True)

    async def stream_ids(self) -> list[str]:
        return sorted(self._streams)

    async def verify(self, progress: Callable[[int], None] | None = None) -> list[IntegrityProblem]:
        problems: list[IntegrityProblem] = []
        for stream_id, ids in sorted(self._streams.items()):
            present = [self.commits[c] for c in ids if c in self.commits]
            if len(present) != len(ids):
                problems.extend(IntegrityProblem(stream_id, c, "commit missing") for c in ids if c not in self.commits)
            problems.extend(verify_chain(stream_id, [chain_link(d) for d in sorted(present, key=lambda d: d["from_version"])]))
            if progress is not None:
                progress(len(present))
        return problems

    def snapshot(self) -> dict[str, Doc]:
        """A deep copy of the stored documents (for tests that tamper with them)."""
        return copy.deepcopy(self.commits)

    def _result_of_cause(self, cause_id: str, *, already: bool) -> AppendResult | None:
        cid = self._causes.get(cause_id)
        return None if cid is None else result_of(self.commits[cid], already=already)

