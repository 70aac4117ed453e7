"""The event store interface every backend implements (and passes one contract test suite for)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from jmo_contracts import Envelope

from .codec import PayloadCodec
from .model import AppendResult, IntegrityProblem, PendingCommit, RecordedEvent


class EventStore(Protocol):
    """An append-only log of streams, each an ordered list of events, with an outbox to Kafka.

    The command path:

    * ``append`` writes all events of one decision atomically after ``expected_version`` (0 for a
      new stream). If another decision got there first it raises :class:`ConcurrencyConflict`.
      ``cause_id`` is the id of the message that caused the decision: appending the same cause
      again changes nothing and returns the earlier result with ``already_applied=True``.
      ``beside`` (key -> fields): small documents the decision makes, written with it, atomically
      no later than it, and only if its commit is written (not for a recognised duplicate or a
      conflict); each is kept under its key until ``drop_beside`` (or, on MongoDB, past a datetime
      field ``expires_at``), for ``find_beside``. Keys must be new; ``_id``, ``cause_id`` and
      ``stream_id`` are the store's. Identity keeps there the sealed OTP code an ``OtpIssued`` issues.
    * ``read_stream`` returns a stream's events in version order. With ``cached=True`` it may
      answer from what this instance last saw of the stream, which can be behind but never wrong:
      a decision taken on it and appended at a stale version is a :class:`ConcurrencyConflict`.

    The relay path (the log is the outbox; see :class:`jmo_runtime.relay.Relay`):

    * every append also leaves the commit *pending* until ``settle`` says its events are on Kafka.
      ``appended_commits`` hands out what this instance appended (from memory); ``appended`` is
      set after every append; ``heartbeat`` says the instance is alive; ``pending_commits`` finds
      what instances silent for some seconds left pending (crash recovery); ``pending_commit``
      tells whether one commit is still pending.

    Batch tools (``jmo audit``; their cost grows with the log):

    * ``sequence`` places committed events in a global order (``position``); ``read_all``
      returns sequenced events after a position, in that order. Positions are only given to
      events already committed, so a reader never skips an event that commits late.
    * ``find_cause``, ``stream_ids``, ``verify`` (every hash chain and the global order).

    ``codec`` protects personal data at rest; a service seals what it keeps beside its log with
    it (:class:`~jmo_eventstore.codec.ValueSealer`), under the same per-participant keys.
    """

    codec: PayloadCodec
    appended: asyncio.Event

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[Envelope], *, cause_id: str, cause_digest: str | None = None,
        beside: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> AppendResult: ...

    async def find_beside(self, key: str) -> dict[str, Any] | None:
        """The fields of the side document ``key``, or None once dropped (or never written)."""

    async def drop_beside(self, keys: Sequence[str]) -> None:
        """Delete these side documents (those already gone are ignored)."""

    async def read_stream(self, stream_id: str, from_version: int = 1, *, cached: bool = False, presume_new: bool = False) -> list[RecordedEvent]: ...

    async def appended_commits(self, limit: int) -> list[PendingCommit]: ...

    async def heartbeat(self) -> None: ...

    async def pending_commits(self, *, older_than: float, limit: int) -> list[PendingCommit]: ...

    async def pending_commit(self, commit: str) -> PendingCommit | None: ...

    async def settle(self, commits: Sequence[str]) -> None: ...

    async def sequence(self, max_commits: int = 1000) -> int: ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]: ...

    async def find_cause(self, cause_id: str) -> AppendResult | None: ...

    async def stream_ids(self) -> list[str]: ...

    async def verify(self, progress: Callable[[int], None] | None = None) -> list[IntegrityProblem]:
        """Every hash chain (and the global order where the backend keeps one) checked;
        ``progress`` is called with the number of commits checked since its last call."""
