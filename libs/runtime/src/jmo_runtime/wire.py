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
"""

from __future__ import annotations

from jmo_contracts import Envelope
from jmo_eventstore import ERASED, FieldEncryptionCodec, PayloadCodec
from jmo_eventstore.codec import SealedFieldUnreadable, clear_personal_fields, is_sealed, personal_fields_of

from .messaging import Refused

PERSONAL_DATA_IN_CLEAR = "PERSONAL_DATA_IN_CLEAR"
PARTICIPANT_ERASED = "PARTICIPANT_ERASED"
SEALED_VALUE_INVALID = "SEALED_VALUE_INVALID"
#: What a DLQ entry holds in place of a personal value that arrived in clear.
WITHHELD = "[withheld]"


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
