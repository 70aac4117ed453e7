"""The hook for protecting personal data inside stored payloads.

The store hands every payload to a :class:`PayloadCodec` before writing and after reading. The
hash chain covers the *stored* form, so a codec that encrypts with a per-subject key supports
erasure by deleting that key (crypto-shredding) while the audit trail stays verifiable.

Encoding and decoding are synchronous; a codec whose keys live elsewhere fetches them first in
:meth:`PayloadCodec.prepare`, which the stores await before every write and read.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jmo_contracts.messages import UnknownMessageType, message_class

Payload = dict[str, Any]
ENCRYPTED_MARK = "$enc"  # FerretDB v1 forbids keys starting with "$"; only used inside values
ERASED = "[erased]"


#: What a store hands to :meth:`PayloadCodec.prepare`: (stream id, type name, payload) of each event.
Item = tuple[str, str, Payload]


class PayloadCodec(Protocol):
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

    async def load(self, subjects: Iterable[str], *, create: bool) -> None:
        for subject in subjects:
            self.key_for(subject, create=create)

    def key_for(self, subject: str, *, create: bool) -> bytes | None:
        if subject not in self._keys and create:
            self._keys[subject] = AESGCM.generate_key(bit_length=256)
        return self._keys.get(subject)

    def forget(self, subject: str) -> None:
        self._keys.pop(subject, None)


def subject_of(stream_id: str, payload: Payload) -> str:
    """Whose key protects a payload: its participant (so erasing one key erases a participant's
    data in every stream: registration, identity, sessions), else the stream. ``participant_id``
    is a reference, not personal data, so it is stored in clear and known when decoding."""
    participant = payload.get("participant_id")
    return f"participant-{participant}" if isinstance(participant, str) and participant else stream_id


class FieldEncryptionCodec:
    """Encrypts the personal fields a contract declares (``PERSONAL_FIELDS``) with AES-GCM.

    Each field becomes ``{"_enc": "<base64 nonce+ciphertext>"}`` under its subject's key (see
    :func:`subject_of`), with the stream id, type and field name as associated data (a value cannot
    be moved elsewhere). Once the key is forgotten, decoding yields ``"[erased]"`` for those fields.
    """

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def prepare(self, items: Iterable[Item], *, writing: bool) -> None:
        subjects = {subject_of(stream_id, payload) for stream_id, type_name, payload in items if _personal_fields(type_name)}
        if subjects:
            await self._keys.load(sorted(subjects), create=writing)

    def encode(self, stream_id: str, type_name: str, payload: Payload) -> Payload:
        personal = _personal_fields(type_name)
        if not personal:
            return payload
        key = self._keys.key_for(subject_of(stream_id, payload), create=True)
        assert key is not None
        aead = AESGCM(key)
        out = dict(payload)
        for name in personal & payload.keys():
            if payload[name] is None:
                continue
            nonce = os.urandom(12)
            plain = _json(payload[name])
            sealed = nonce + aead.encrypt(nonce, plain, _aad(stream_id, type_name, name))
            out[name] = {"_enc": base64.b64encode(sealed).decode()}
        return out

    def decode(self, stream_id: str, type_name: str, stored: Payload) -> Payload:
        personal = _personal_fields(type_name)
        sealed_fields = [n for n in personal & stored.keys() if isinstance(stored[n], dict) and "_enc" in stored[n]]
        if not sealed_fields:
            return stored
        key = self._keys.key_for(subject_of(stream_id, stored), create=False)
        out = dict(stored)
        for name in sealed_fields:
            if key is None:
                out[name] = ERASED
                continue
            raw = base64.b64decode(stored[name]["_enc"])
            plain = AESGCM(key).decrypt(raw[:12], raw[12:], _aad(stream_id, type_name, name))
            out[name] = _unjson(plain)
        return out


def _personal_fields(type_name: str) -> frozenset[str]:
    try:
        return message_class(type_name).PERSONAL_FIELDS
    except UnknownMessageType:
        return frozenset()


def _aad(stream_id: str, type_name: str, field_name: str) -> bytes:
    return f"{stream_id}|{type_name}|{field_name}".encode()


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _unjson(raw: bytes) -> Any:
    import json

    return json.loads(raw)
