"""The event log: append with expected version, idempotency by cause, hash chain, global order."""

from .codec import ERASED, FieldEncryptionCodec, InMemoryKeyRing, KeyRing, PayloadCodec, PlainCodec, ValueSealer, participant_subject, subject_of
from .grouped import GroupedInserts, GroupedLookups, GroupedWrites
from .keyring import MongoKeyRing
from .memory import InMemoryEventStore
from .model import AppendResult, ConcurrencyConflict, IntegrityProblem, PendingCommit, RecordedEvent
from .mongo import MongoEventStore, delete_by_id, ensure_ttl_index
from .protocol import EventStore

__all__ = [
    "ERASED",
    "AppendResult",
    "ConcurrencyConflict",
    "EventStore",
    "FieldEncryptionCodec",
    "GroupedInserts",
    "GroupedLookups",
    "GroupedWrites",
    "InMemoryEventStore",
    "InMemoryKeyRing",
    "IntegrityProblem",
    "KeyRing",
    "MongoKeyRing",
    "MongoEventStore",
    "PendingCommit",
    "PayloadCodec",
    "PlainCodec",
    "participant_subject",
    "subject_of",
    "RecordedEvent",
    "ValueSealer",
    "delete_by_id",
    "ensure_ttl_index",
]
