"""OTP cryptography (SPEC §4, §9): CSPRNG codes, keyed hashes for the log, AES-256-GCM for delivery.

Application-level helpers, used by identity (and by notification to open a sealed code). The plain
code exists only in memory: the event log gets :func:`code_hmac`, Kafka gets :func:`seal_code`.

Keys are 32 random bytes supplied by the application from its environment (never from the
repository); :func:`decode_key` turns their base64 text form into bytes. The HMAC key (identity's)
and the sealing key (the notification service's) are different keys with different ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
ALGORITHM = "AES-256-GCM"
#: Domain separation: an OTP HMAC can never collide with another use of the same key.
_HMAC_LABEL = b"jmo-otp-code-v1"


class SealedCodeError(ValueError):
    """A sealed code could not be opened: tampered, for another otp_id, wrong key, or not base64."""


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes")


def decode_key(text: str) -> bytes:
    """A key from its base64 text form (as kept in an environment variable); exactly 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("key is not valid base64") from None
    _check_key(key)
    return key


def generate_code(length: int = 6) -> str:
    """A numeric one-time code of ``length`` digits from the OS CSPRNG; leading zeros are kept."""
    if not 4 <= length <= 10:
        raise ValueError("code length must be 4-10 digits")
    return f"{secrets.randbelow(10**length):0{length}d}"


def code_hmac(key: bytes, participant_id: str, otp_id: str, code: str) -> str:
    """HMAC-SHA256 (hex) of ``code`` bound to the participant and the otp id.

    Binding means a hash recorded for one code cannot be replayed against another participant or
    another code of the same participant. Fields are separated by NUL so they cannot run together.
    """
    _check_key(key)
    message = b"\x00".join((_HMAC_LABEL, participant_id.encode(), otp_id.encode(), code.encode()))
    return hmac.new(bytes(key), message, hashlib.sha256).hexdigest()


def codes_match(key: bytes, participant_id: str, otp_id: str, submitted: str, expected_hmac: str) -> bool:
    """Whether ``submitted`` is the code whose HMAC is ``expected_hmac``, compared in constant time."""
    actual = code_hmac(key, participant_id, otp_id, submitted).encode()
    return hmac.compare_digest(actual, expected_hmac.encode("utf-8", "replace"))


def seal_code(key: bytes, key_id: str, otp_id: str, code: str) -> tuple[str, str]:
    """Encrypt ``code`` for the notification service: AES-256-GCM, ``otp_id`` (ASCII) as associated data.

    Returns ``(ciphertext_b64, key_id)``; the text is standard base64 of ``nonce(12) || ciphertext || tag(16)``
    as ``OtpDeliveryRequested.code_ciphertext`` specifies. A fresh random nonce is used each time.
    """
    _check_key(key)
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(bytes(key)).encrypt(nonce, code.encode(), otp_id.encode("ascii"))
    return base64.b64encode(nonce + sealed).decode("ascii"), key_id


def open_code(key: bytes, otp_id: str, ciphertext_b64: str) -> str:
    """The code sealed by :func:`seal_code`; :class:`SealedCodeError` if it was altered or is for another otp_id."""
    _check_key(key)
    try:
        blob = base64.b64decode(ciphertext_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SealedCodeError("sealed code is not valid base64") from None
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise SealedCodeError("sealed code is too short")
    try:
        plain = AESGCM(bytes(key)).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], otp_id.encode("ascii"))
    except InvalidTag:
        raise SealedCodeError("sealed code failed authentication (tampered, other otp_id or other key)") from None
    return plain.decode()
