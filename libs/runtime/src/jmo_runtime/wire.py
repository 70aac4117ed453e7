"""Personal data on Kafka: sealed on the wire as at rest, opened only by the consumers that need it.

Every personal field a contract declares (``PERSONAL_FIELDS``) travels as the event log stores it,
``{"_enc": ...}`` under the participant's data key from the key ring every service shares (see
:func:`jmo_runtime.service.shared_key_ring`), with ``stream|type|field`` as associated data. The
relay publishes the stored form as it is (no second encryption); the gateway seals its commands
the same way (:func:`seal_envelope`). Anyone else reading a topic (a Kafka UI, a DLQ reader) sees
the structure, the type headers and sealed values. Erasing the participant's key makes every copy,
wherever it sits, unreadable.

A consumer with a master key opens a received envelope with :func:`open_envelope` before its
payload is validated. It refuses, with a reason code, what it must not act on:

* ``PERSONAL_DATA_IN_CLEAR``: a personal field arrived in clear (a sender that does not seal); its
  DLQ entry keeps the envelope with those fields withheld, never the clear bytes;
* ``PARTICIPANT_ERASED``: the participant's key is gone (or never existed): nothing to act on
  (also when a sender that could no longer seal sent the ``[erased]`` marker in their place; the
  same marker for a participant who has a key is a value in clear);
* ``SEALED_VALUE_INVALID``: a sealed value that is not the participant's for this stream, type and field.

Costs: one key look-up per participant per process, cached by the key ring
(:class:`~jmo_eventstore.MongoKeyRing`); messages without personal fields cost nothing.

A consumer that only *keeps* what it receives, to read it much later if ever (biometric keeps a
participant's NIK to ask Dukcapil for their KTP photo at their first selfie), need not open it at
all: :func:`kept_sealed` admits the envelope with its personal fields still sealed (refusing any in
clear as above, and the ``[erased]`` marker as ``PARTICIPANT_ERASED``), the handler stores a
:class:`WireSealed` value as it came, and :func:`open_kept` opens it when it is needed. No key
look-up, no decryption and no re-encryption when the message arrives; erasing the participant's
key makes the kept copy unreadable like every other. What is not checked on arrival is that the
sealed value opens: a value that does not (forged by a writer of the topic, or its participant
erased since) reads as missing when it is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jmo_contracts import Envelope
from jmo_eventstore import ERASED, FieldEncryptionCodec, PayloadCodec
from jmo_eventstore.codec import SealedFieldUnreadable, clear_personal_fields, is_sealed, personal_fields_of

from .messaging import Refused

PERSONAL_DATA_IN_CLEAR = "PERSONAL_DATA_IN_CLEAR"
PARTICIPANT_ERASED = "PARTICIPANT_ERASED"
SEALED_VALUE_INVALID = "SEALED_VALUE_INVALID"
#: What a DLQ entry holds in place of a personal value that arrived in clear.
WITHHELD = "[withheld]"
#: The longest sealed value a consumer that keeps fields sealed keeps (base64 characters): personal
#: fields are short (a name, an address), so this is generous.
MAX_SEALED_CHARS = 8192


async def open_envelope(codec: FieldEncryptionCodec, envelope: Envelope) -> Envelope | Refused:
    """``envelope`` with its sealed personal fields opened, or why it must not be acted on (see the
    module). Loads the participant's key (cached) only when a field is sealed."""
    clear = clear_personal_fields(envelope.type, envelope.payload)
    if clear:
        return _in_clear(envelope, clear)
    personal = personal_fields_of(envelope.type)
    marked = sorted(n for n in personal if envelope.payload.get(n) == ERASED)
    if not marked and not any(is_sealed(envelope.payload.get(n)) for n in personal):
        return envelope
    await codec.prepare([(envelope.stream_id, envelope.type, envelope.payload)], writing=False)
    if marked:  # what a sender writes in place of what it can no longer seal
        if not codec.has_key(envelope.stream_id, envelope.payload):
            return Refused(PARTICIPANT_ERASED, f"sent for an erased participant: {', '.join(marked)} read {ERASED}", envelope=envelope)
        return _in_clear(envelope, marked)
    try:
        opened = codec.open_received(envelope.stream_id, envelope.type, envelope.payload)
    except SealedFieldUnreadable as e:
        return Refused(e.reason, f"sealed field {e.field_name} does not open", envelope=envelope)
    return envelope.model_copy(update={"payload": opened})


async def kept_sealed(envelope: Envelope) -> Envelope | Refused:
    """``envelope`` as it came, for a consumer that keeps its personal fields sealed (see the
    module), or why not: a personal field in clear (``PERSONAL_DATA_IN_CLEAR``) or the ``[erased]``
    marker (``PARTICIPANT_ERASED``: nothing left to keep). No key is looked up."""
    clear = clear_personal_fields(envelope.type, envelope.payload)
    if clear:
        return _in_clear(envelope, clear)
    personal = personal_fields_of(envelope.type)
    marked = sorted(n for n in personal if envelope.payload.get(n) == ERASED)
    if marked:
        return Refused(PARTICIPANT_ERASED, f"sent for an erased participant: {', '.join(marked)} read {ERASED}", envelope=envelope)
    malformed = sorted(n for n in personal if is_sealed(envelope.payload.get(n)) and not _well_formed(envelope.payload[n]))
    if malformed:  # kept as it is, it must be nothing but a sealed value
        return Refused(SEALED_VALUE_INVALID, f"sealed field {malformed[0]} is not a sealed value", envelope=envelope)
    return envelope


def _well_formed(sealed: Any) -> bool:
    return set(sealed) == {"_enc"} and isinstance(sealed["_enc"], str) and len(sealed["_enc"]) <= MAX_SEALED_CHARS


@dataclass(frozen=True)
class WireSealed:
    """A personal field kept as it travelled on Kafka (see :func:`kept_sealed`): the sealed value
    and what it is bound to (stream, type, field, and its participant, whose key opens it)."""

    participant_id: str
    stream_id: str
    type: str
    field: str
    sealed: dict[str, str]

    @classmethod
    def of(cls, envelope: Envelope, field: str) -> WireSealed | None:
        """Field ``field`` of a kept-sealed ``envelope``; None when it is not sealed (a service
        without a data key receives personal fields in clear)."""
        value = envelope.payload.get(field)
        if not is_sealed(value):
            return None
        return cls(str(envelope.payload.get("participant_id") or ""), envelope.stream_id, envelope.type, field, dict(value))

    def to_document(self) -> dict[str, Any]:
        """How a store keeps it (no personal data in clear)."""
        return {"participant_id": self.participant_id, "stream_id": self.stream_id, "type": self.type, "field": self.field, "sealed": self.sealed}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> WireSealed:
        return cls(doc["participant_id"], doc["stream_id"], doc["type"], doc["field"], dict(doc["sealed"]))


async def open_kept(codec: FieldEncryptionCodec, kept: WireSealed) -> Any:
    """The value ``kept`` holds, opened with its participant's key (loaded, cached).

    :raises SealedFieldUnreadable: ``PARTICIPANT_ERASED`` (no key: erased, or never issued) or
        ``SEALED_VALUE_INVALID`` (not sealed under that key for that stream, type and field).
    """
    return (await open_all_kept(codec, [kept]))[kept.field]


async def open_all_kept(codec: FieldEncryptionCodec, kept: Sequence[WireSealed]) -> dict[str, Any]:
    """The values ``kept`` hold, by field name, opened as :func:`open_kept` opens one, with one
    key look-up for all of them (the first that does not open raises, as there)."""
    for one in kept:
        if one.field not in personal_fields_of(one.type):  # a stored document that says otherwise is not ours
            raise SealedFieldUnreadable(SEALED_VALUE_INVALID, one.field)
    payloads = [{one.field: one.sealed} | ({"participant_id": one.participant_id} if one.participant_id else {}) for one in kept]
    await codec.prepare([(one.stream_id, one.type, payload) for one, payload in zip(kept, payloads)], writing=False)
    return {one.field: codec.open_received(one.stream_id, one.type, payload)[one.field] for one, payload in zip(kept, payloads)}


def _in_clear(envelope: Envelope, fields: list[str]) -> Refused:
    """Refused for personal ``fields`` not sealed; what it keeps (and a DLQ copy holds) withholds them."""
    withheld = envelope.model_copy(update={"payload": {**envelope.payload, **dict.fromkeys(fields, WITHHELD)}})
    return Refused(PERSONAL_DATA_IN_CLEAR, f"personal fields not sealed: {', '.join(fields)}", envelope=withheld, parked_as=withheld.to_json())


async def seal_envelope(codec: PayloadCodec, envelope: Envelope, *, create: bool = True) -> Envelope:
    """``envelope`` with its personal fields sealed as the log stores them (under the participant's
    key, made when ``create`` and missing). With :class:`~jmo_eventstore.PlainCodec` it is returned
    as it is; a field of an erased participant becomes ``[erased]``."""
    if not personal_fields_of(envelope.type) or not isinstance(codec, FieldEncryptionCodec):
        return envelope
    await codec.prepare([(envelope.stream_id, envelope.type, envelope.payload)], writing=create)
    if not codec.has_key(envelope.stream_id, envelope.payload):  # erased (or, not creating, never issued)
        personal = personal_fields_of(envelope.type)
        return envelope.model_copy(update={"payload": {k: (ERASED if k in personal and v is not None else v) for k, v in envelope.payload.items()}})
    return envelope.model_copy(update={"payload": codec.encode(envelope.stream_id, envelope.type, envelope.payload)})
