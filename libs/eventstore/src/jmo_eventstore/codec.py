"""The hook for protecting personal data inside stored payloads.

The store hands every payload to a :class:`PayloadCodec` before writing and after reading. The
hash chain covers the *stored* form, so a codec that encrypts with a per-subject key supports
erasure by deleting that key (crypto-shredding) while the audit trail stays verifiable.

Encoding and decoding are synchronous; a codec whose keys live elsewhere fetches them first in
:meth:`PayloadCodec.prepare`, which the stores await before every write and read.

A codec is also a :class:`ValueSealer`: what a service keeps beside its log about a participant (a
read model) is sealed with the same per-participant key, so erasing that key erases it as well.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jmo_contracts.messages import ERASED, UnknownMessageType, message_class

Payload = dict[str, Any]
ENCRYPTED_MARK = "$enc"  # FerretDB v1 forbids keys starting with "$"; only used inside values


#: What a store hands to :meth:`PayloadCodec.prepare`: (stream id, type name, payload) of each event.
Item = tuple[str, str, Payload]


class ValueSealer(Protocol):
    """Protects one JSON-ready value at rest under a subject's key (see :func:`participant_subject`).

    ``context`` says what the value is (e.g. ``"participant-profile"``); it is bound to the sealed
    form together with the subject, so a value copied to another participant or purpose does not open.
    """

    async def seal(self, subject: str, value: Any, *, context: str, create: bool) -> Any | None:
        """``value`` in its stored form, or None when ``subject`` has no key and ``create`` is False
        (its data was erased, or it never had any)."""

    async def unseal(self, subject: str, stored: Any, *, context: str) -> Any:
        """The value :meth:`seal` stored. :data:`ERASED` once the subject's key is gone, or when the
        key it has now did not seal the value (a key made anew after an erasure). A value that was
        stored without sealing comes back as it is. A wrong master key still raises."""


class PayloadCodec(ValueSealer, Protocol):
    """Turns a payload into its stored form and back. Must be deterministic in what it decodes."""

    async def prepare(self, items: Iterable[Item], *, writing: bool) -> None:
        """Get ready to encode (``writing``) or decode these events, e.g. fetch their keys."""

    def encode(self, stream_id: str, type_name: str, payload: Payload) -> Payload: ...

    def decode(self, stream_id: str, type_name: str, stored: Payload) -> Payload: ...


class PlainCodec:
    """Stores payloads as they are."""

    async def prepare(self, items: Iterable[Item], *, writing: bool) -> None:
        return None

    def encode(self, stream_id: str, type_name: str, payload: Payload) -> Payload:
        return payload

    def decode(self, stream_id: str, type_name: str, stored: Payload) -> Payload:
        return stored

    async def seal(self, subject: str, value: Any, *, context: str, create: bool) -> Any | None:
        return value

    async def unseal(self, subject: str, stored: Any, *, context: str) -> Any:
        return stored


class KeyRing(Protocol):
    """Data keys per subject (a participant, or a stream without one). Deleting a key erases that
    subject's data. ``load`` makes keys available to the synchronous ``key_for``."""

    async def load(self, subjects: Iterable[str], *, create: bool) -> None: ...

    def key_for(self, subject: str, *, create: bool) -> bytes | None: ...

    def forget(self, subject: str) -> None: ...


class InMemoryKeyRing:
    """A key ring held in memory: for tests and for the embedded single-process default."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._erased: set[str] = set()

    async def load(self, subjects: Iterable[str], *, create: bool) -> None:
        for subject in subjects:
            self.key_for(subject, create=create)

    def key_for(self, subject: str, *, create: bool) -> bytes | None:
        if subject not in self._keys and create and subject not in self._erased:
            self._keys[subject] = AESGCM.generate_key(bit_length=256)
        return self._keys.get(subject)

    def forget(self, subject: str) -> None:
        self._keys.pop(subject, None)

    async def erase(self, subject: str) -> None:
        """Delete the subject's key for good: no new key is made for it (as :class:`~jmo_eventstore.keyring.MongoKeyRing`)."""
        self.forget(subject)
        self._erased.add(subject)


def participant_subject(participant_id: str) -> str:
    """The key-ring subject of a participant: one key for everything kept about them."""
    return f"participant-{participant_id}"


#: Stream kinds whose id is the participant's own (``registration-<participant id>``,
#: ``identity-<participant id>``): a command to one of them without a ``participant_id`` field
#: (``RegisterParticipant``) is still sealed under the participant's key.
PARTICIPANT_STREAM_KINDS = frozenset({"registration", "identity"})


def subject_of(stream_id: str, payload: Payload) -> str:
    """Whose key protects a payload: its participant (so erasing one key erases a participant's
    data in every stream: registration, identity, sessions, and on Kafka), else the stream.
    ``participant_id`` is a reference, not personal data, so it is stored in clear and known when
    decoding; without one, a stream named after its participant (:data:`PARTICIPANT_STREAM_KINDS`)
    names them."""
    participant = payload.get("participant_id")
    if isinstance(participant, str) and participant:
        return participant_subject(participant)
    kind, _, ref = stream_id.rpartition("-")
    return participant_subject(ref) if kind in PARTICIPANT_STREAM_KINDS and ref else stream_id


class SealedFieldUnreadable(ValueError):
    """A sealed personal field of a received message does not open: ``reason`` is
    ``PARTICIPANT_ERASED`` (no key for its subject: erased, or never issued) or
    ``SEALED_VALUE_INVALID`` (not sealed under that key, for that stream, type and field)."""

    def __init__(self, reason: str, field_name: str) -> None:
        super().__init__(f"{reason}: {field_name}")
        self.reason = reason
        self.field_name = field_name


def personal_fields_of(type_name: str) -> frozenset[str]:
    """The personal fields the contract of ``type_name`` declares (none for an unknown type)."""
    return _personal_fields(type_name)


def is_sealed(value: Any) -> bool:
    """Whether ``value`` is a sealed field (``{"_enc": ...}``)."""
    return _is_sealed(value)


def clear_personal_fields(type_name: str, payload: Payload) -> list[str]:
    """Personal fields of ``payload`` that hold a value in clear (not sealed, not null, not
    :data:`ERASED`), sorted: what must not travel on Kafka."""
    return sorted(n for n in _personal_fields(type_name) & payload.keys() if payload[n] is not None and payload[n] != ERASED and not _is_sealed(payload[n]))


class FieldEncryptionCodec:
    """Encrypts the personal fields a contract declares (``PERSONAL_FIELDS``) with AES-GCM.

    Each field becomes ``{"_enc": "<base64 nonce+ciphertext>"}`` under its subject's key (see
    :func:`subject_of`), with the stream id, type and field name as associated data (a value cannot
    be moved elsewhere). Once the key is forgotten, decoding yields ``"[erased]"`` for those fields.
    As a :class:`ValueSealer` it seals a whole value the same way, bound to its subject and context.
    """

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    @property
    def keys(self) -> KeyRing:
        """The key ring it seals with (one instance, and one cache, per process is enough)."""
        return self._keys

    async def prepare(self, items: Iterable[Item], *, writing: bool) -> None:
        subjects = {subject_of(stream_id, payload) for stream_id, type_name, payload in items if _personal_fields(type_name)}
        if subjects:
            await self._keys.load(sorted(subjects), create=writing)

    def encode(self, stream_id: str, type_name: str, payload: Payload) -> Payload:
        personal = _personal_fields(type_name)
        if not personal:
            return payload
        key = self._keys.key_for(subject_of(stream_id, payload), create=True)
        out = dict(payload)
        for name in personal & payload.keys():
            if payload[name] is not None:  # an erased subject has no key, and nothing personal is kept about it
                out[name] = ERASED if key is None else _seal(key, payload[name], _aad(stream_id, type_name, name))
        return out

    def decode(self, stream_id: str, type_name: str, stored: Payload) -> Payload:
        personal = _personal_fields(type_name)
        sealed_fields = [n for n in personal & stored.keys() if _is_sealed(stored[n])]
        if not sealed_fields:
            return stored
        key = self._keys.key_for(subject_of(stream_id, stored), create=False)
        out = dict(stored)
        for name in sealed_fields:
            out[name] = ERASED if key is None else _open_or_erased(key, stored[name], _aad(stream_id, type_name, name))
        return out

    def has_key(self, stream_id: str, payload: Payload) -> bool:
        """Whether the subject of ``payload`` has a key loaded (after :meth:`prepare`): not erased, not unknown."""
        return self._keys.key_for(subject_of(stream_id, payload), create=False) is not None

    def open_received(self, stream_id: str, type_name: str, payload: Payload) -> Payload:
        """``payload`` of a message received from Kafka with its sealed personal fields opened
        (after :meth:`prepare` with ``writing=False``). Unlike :meth:`decode`, which reads an
        erased field as ``[erased]``, a field that does not open raises :class:`SealedFieldUnreadable`:
        a consumer must not act on a message it cannot read. Fields in clear are left as they are."""
        sealed_fields = sorted(n for n in _personal_fields(type_name) & payload.keys() if _is_sealed(payload[n]))
        if not sealed_fields:
            return payload
        key = self._keys.key_for(subject_of(stream_id, payload), create=False)
        if key is None:
            raise SealedFieldUnreadable("PARTICIPANT_ERASED", sealed_fields[0])
        out = dict(payload)
        for name in sealed_fields:
            try:
                out[name] = _open(key, payload[name], _aad(stream_id, type_name, name))
            except Exception:  # noqa: BLE001 (forged, tampered, moved, or sealed under a key erased since)
                raise SealedFieldUnreadable("SEALED_VALUE_INVALID", name) from None
        return out

    async def seal(self, subject: str, value: Any, *, context: str, create: bool) -> Any | None:
        await self._keys.load([subject], create=create)
        key = self._keys.key_for(subject, create=False)
        return None if key is None else _seal(key, value, _value_aad(subject, context))

    async def unseal(self, subject: str, stored: Any, *, context: str) -> Any:
        if not _is_sealed(stored):
            return stored
        await self._keys.load([subject], create=False)
        key = self._keys.key_for(subject, create=False)
        return ERASED if key is None else _open_or_erased(key, stored, _value_aad(subject, context))


def _personal_fields(type_name: str) -> frozenset[str]:
    try:
        return message_class(type_name).PERSONAL_FIELDS
    except UnknownMessageType:
        return frozenset()


def _aad(stream_id: str, type_name: str, field_name: str) -> bytes:
    return f"{stream_id}|{type_name}|{field_name}".encode()


def _value_aad(subject: str, context: str) -> bytes:
    return f"{subject}|{context}".encode()


def _is_sealed(stored: Any) -> bool:
    return isinstance(stored, Mapping) and "_enc" in stored


def _seal(key: bytes, value: Any, aad: bytes) -> dict[str, str]:
    """``{"_enc": base64(nonce + AES-GCM ciphertext of the value as JSON)}``."""
    nonce = os.urandom(12)
    return {"_enc": base64.b64encode(nonce + AESGCM(key).encrypt(nonce, _json(value), aad)).decode()}


def _open(key: bytes, sealed: Mapping[str, str], aad: bytes) -> Any:
    raw = base64.b64decode(sealed["_enc"])
    return _unjson(AESGCM(key).decrypt(raw[:12], raw[12:], aad))


def _open_or_erased(key: bytes, sealed: Mapping[str, str], aad: bytes) -> Any:
    # a key that does not open it: sealed under a key erased since (before tombstones, a new key could follow)
    try:
        return _open(key, sealed, aad)
    except InvalidTag:
        return ERASED


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _unjson(raw: bytes) -> Any:
    import json

    return json.loads(raw)
