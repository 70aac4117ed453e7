"""Protection at rest of what the service keeps about a participant (a NIK, a reference embedding).

AES-256-GCM with a key from the environment; the associated data binds a sealed value to its purpose
and its participant, so a value copied to another document does not open.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


def decode_key(text: str) -> bytes:
    """A key from its base64 text form; exactly 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes")
    return key


class Sealer:
    """Seals and opens small values with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def seal(self, plain: bytes, purpose: str, subject: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, f"{purpose}\x00{subject}".encode())

    def open(self, sealed: bytes, purpose: str, subject: str) -> bytes:
        """:class:`cryptography.exceptions.InvalidTag` if altered, for another subject, or another key."""
        return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], f"{purpose}\x00{subject}".encode())
