"""Protection at rest of what the service keeps about a participant (the NIK, a reference embedding).

AES-256-GCM under the participant's own data key — the key ring every service's event log uses
(``data_keys``, each key wrapped by ``JMO_DATA_KEY``), under the same subject
(:func:`~jmo_eventstore.participant_subject`). Erasing a participant's key therefore erases
these values too (crypto-shredding), together with the personal fields of the log. The associated
data binds a sealed value to its purpose and its participant, so a value copied elsewhere does not open.
"""

from __future__ import annotations

import secrets

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jmo_eventstore import FieldEncryptionCodec, KeyRing, participant_subject
from jmo_eventstore.codec import SealedFieldUnreadable
from jmo_runtime.wire import WireSealed, open_kept

NONCE_BYTES = 12
log = structlog.get_logger(__name__)


class ParticipantSealer:
    """Seals and opens small values under per-participant keys from a :class:`~jmo_eventstore.KeyRing`."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    async def seal(self, plain: bytes, purpose: str, participant_id: str) -> bytes | None:
        """The sealed value; ``None`` for an erased participant (nothing may be kept about them)."""
        subject = participant_subject(participant_id)
        await self._keyring.load([subject], create=True)
        key = self._keyring.key_for(subject, create=True)
        if key is None:
            return None
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, plain, f"{purpose}\x00{participant_id}".encode())

    async def open(self, sealed: bytes, purpose: str, participant_id: str) -> bytes | None:
        """The plain value; ``None`` once the participant's key is erased.

        :raises cryptography.exceptions.InvalidTag: altered, or sealed for another participant or purpose.
        """
        subject = participant_subject(participant_id)
        await self._keyring.load([subject], create=False)
        key = self._keyring.key_for(subject, create=False)
        if key is None:
            return None
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], f"{purpose}\x00{participant_id}".encode())

    async def open_as_sent(self, kept: WireSealed, participant_id: str) -> str | None:
        """A personal field kept as it came on Kafka (:class:`~jmo_runtime.wire.WireSealed`), opened
        with the participant's key; ``None`` once that key is erased, or when the value is not the
        participant's (sealed for someone or something else: forged)."""
        if kept.participant_id != participant_id:
            log.warning("a kept value names another participant; ignored", participant_id=participant_id)
            return None
        try:
            return str(await open_kept(FieldEncryptionCodec(self._keyring), kept))
        except SealedFieldUnreadable as unreadable:
            if unreadable.reason != "PARTICIPANT_ERASED":
                log.warning("a kept value does not open; ignored", participant_id=participant_id, reason=unreadable.reason)
            return None
