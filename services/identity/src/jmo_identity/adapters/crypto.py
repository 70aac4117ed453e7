"""OTP codes and their keyed hashes (SPEC §4, §9): CSPRNG codes, HMACs for the log.

The plain code exists only in memory: the event log gets :func:`code_hmac`; Kafka gets the code
sealed for the notification service by :func:`jmo_runtime.sealing.seal_code` (AES-256-GCM, shared
with the notification service, which opens it). The HMAC key (identity's, from its environment,
decoded by :func:`jmo_runtime.sealing.decode_key`) and the sealing key (the notification
service's) are different keys with different ids.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from jmo_runtime.sealing import check_key

#: Domain separation: an OTP HMAC can never collide with another use of the same key.
_HMAC_LABEL = b"jmo-otp-code-v1"


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
    check_key(key)
    message = b"\x00".join((_HMAC_LABEL, participant_id.encode(), otp_id.encode(), code.encode()))
    return hmac.new(bytes(key), message, hashlib.sha256).hexdigest()


def codes_match(key: bytes, participant_id: str, otp_id: str, submitted: str, expected_hmac: str) -> bool:
    """Whether ``submitted`` is the code whose HMAC is ``expected_hmac``, compared in constant time."""
    actual = code_hmac(key, participant_id, otp_id, submitted).encode()
    return hmac.compare_digest(actual, expected_hmac.encode("utf-8", "replace"))
