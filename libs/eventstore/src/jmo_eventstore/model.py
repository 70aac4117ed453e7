"""What the event store takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jmo_contracts import Envelope, Message, parse_stored


class ConcurrencyConflict(Exception):
    """Another decision was appended to the stream since it was read; reload and decide again."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int | None = None) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(f"stream {stream_id}: expected version {expected_version}, found {actual_version}")


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored: its envelope, its version in its stream and its global position.

    ``position`` is ``None`` until the sequencer has placed the event in the global order.
    """

    envelope: Envelope
    stream_version: int
    position: int | None
    commit_id: str
    #: The payload as the log stores it (personal fields sealed by the store's codec): what the
    #: relay publishes, so personal data is on Kafka only in the form it has at rest.
    stored_payload: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def wire_envelope(self) -> Envelope:
        """The envelope as it travels on Kafka: :attr:`stored_payload` in place of the decoded payload."""
        return self.envelope if self.stored_payload is None else self.envelope.model_copy(update={"payload": self.stored_payload})

    @property
    def stream_id(self) -> str:
        return self.envelope.stream_id

    def open(self) -> Message:
        """The payload as the current model of its type, as a fold reads it: an erased participant's
        personal fields read ``[erased]`` whatever their type (see :func:`jmo_contracts.parse_stored`)."""
        env = self.envelope
        return parse_stored(env.type, env.schema_version, env.payload)


@dataclass(frozen=True)
class AppendResult:
    """Outcome of an append: the versions written, or those of the earlier append of the same cause."""

    stream_id: str
    commit_id: str
    from_version: int
    to_version: int
    already_applied: bool = False
    message_ids: tuple[str, ...] = field(default=())
    #: What the causing message said (a digest given to ``append``): a redelivery says the same, a
    #: message id reused for something else does not.
    cause_digest: str | None = None


@dataclass(frozen=True)
class IntegrityProblem:
    """One finding of ``verify``: where the log no longer matches its hash chain."""

    stream_id: str
    commit_id: str | None
    problem: str


@dataclass(frozen=True)
class PendingCommit:
    """A commit whose events may not have reached Kafka yet: what a relay publishes and then
    settles (:meth:`~jmo_eventstore.protocol.EventStore.settle`). ``prev_commit`` is the stream's
    previous commit, which must be on Kafka first."""

    commit_id: str
    stream_id: str
    prev_commit: str | None
    events: tuple[RecordedEvent, ...]
