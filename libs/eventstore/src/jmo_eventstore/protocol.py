"""The event store interface every backend implements (and passes one contract test suite for)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from jmo_contracts import Envelope

from .codec import PayloadCodec
from .model import AppendResult, IntegrityProblem, RecordedEvent


class EventStore(Protocol):
    """An append-only log of streams, each an ordered list of events, plus one global order.

    * ``append`` writes all events of one decision atomically after ``expected_version`` (0 for a
      new stream). If another decision got there first it raises :class:`ConcurrencyConflict`.
      ``cause_id`` is the id of the message that caused the decision: appending the same cause
      again changes nothing and returns the earlier result with ``already_applied=True``.
    * ``read_stream`` returns a stream's events in version order.
    * ``sequence`` places committed events in the global order (``position``); ``read_all``
      returns sequenced events after a position, in that order. Positions are only given to
      events already committed, so a reader never skips an event that commits late.
    * ``verify`` checks every hash chain and the global order against the commits.
    * ``codec`` protects personal data at rest; a service seals what it keeps beside its log with
      it (:class:`~jmo_eventstore.codec.ValueSealer`), under the same per-participant keys.
    """

    codec: PayloadCodec

    async def append(self, stream_id: str, expected_version: int, events: Sequence[Envelope], *, cause_id: str) -> AppendResult: ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]: ...

    async def sequence(self, max_commits: int = 1000) -> int: ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]: ...

    async def find_cause(self, cause_id: str) -> AppendResult | None: ...

    async def stream_ids(self) -> list[str]: ...

    async def verify(self) -> list[IntegrityProblem]: ...
