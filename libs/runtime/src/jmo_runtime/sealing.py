"""AES-256-GCM sealing shared by services (SPEC §4, §9): OTP codes on Kafka, personal data at rest.

Identity seals an OTP code for the notification service with :func:`seal_code`; notification opens
it with :func:`open_code` only at the moment of sending. :func:`seal_text` / :func:`open_text` protect
any other short personal value at rest, bound to a context (e.g. the participant id and field name)
so a ciphertext cannot be moved to another record.

Keys are 32 random bytes supplied by the application from its environment (never from the
repository); :func:`decode_key` turns their base64 text form into bytes.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
ALGORITHM = "AES-256-GCM"


class SealedCodeError(ValueError):
    """A sealed value could not be opened: tampered, for another context, wrong key, or not base64."""


def check_key(key: bytes) -> None:
    """Raise ValueError unless ``key`` is exactly 32 bytes."""
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes")


def decode_key(text: str) -> bytes:
    """A key from its base64 text form (as kept in an environment variable); exactly 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("key is not valid base64") from None
    check_key(key)
    return key


def seal_text(key: bytes, associated: str, plain: str) -> str:
    """Standard base64 of ``nonce(12) || ciphertext || tag(16)`` of ``plain`` under AES-256-GCM.

    ``associated`` (ASCII) is authenticated, not encrypted: the value opens only with the same one.
    A fresh random nonce is used each time.
    """
    check_key(key)
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(bytes(key)).encrypt(nonce, plain.encode(), associated.encode("ascii"))
    return base64.b64encode(nonce + sealed).decode("ascii")


def open_text(key: bytes, associated: str, ciphertext_b64: str) -> str:
    """The value sealed by :func:`seal_text`; :class:`SealedCodeError` if altered or for another context."""
    check_key(key)
    try:
        blob = base64.b64decode(ciphertext_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SealedCodeError("sealed value is not valid base64") from None
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise SealedCodeError("sealed value is too short")
    try:
        plain = AESGCM(bytes(key)).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated.encode("ascii"))
    except InvalidTag:
        raise SealedCodeError("sealed value failed authentication (tampered, other context or other key)") from None
    return plain.decode()


def seal_code(key: bytes, key_id: str, otp_id: str, code: str) -> tuple[str, str]:
    """Encrypt an OTP ``code`` for the notification service: AES-256-GCM, ``otp_id`` (ASCII) as associated data.

    Returns ``(ciphertext_b64, key_id)``; the text is standard base64 of ``nonce(12) || ciphertext || tag(16)``
    as ``OtpDeliveryRequested.code_ciphertext`` specifies.
    """
    return seal_text(key, otp_id, code), key_id


def open_code(key: bytes, otp_id: str, ciphertext_b64: str) -> str:
    """The code sealed by :func:`seal_code`; :class:`SealedCodeError` if it was altered or is for another otp_id."""
    return open_text(key, otp_id, ciphertext_b64)
