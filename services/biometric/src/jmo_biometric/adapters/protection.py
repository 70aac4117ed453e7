"""Protection at rest of what the service keeps about a participant (the NIK, a reference embedding).

AES-256-GCM under the participant's own data key — the key ring every service's event log uses
(``data_keys``, each key wrapped by ``JMO_DATA_KEY``), under the same subject
(:func:`~jmo_eventstore.participant_subject`). Erasing a participant's key therefore erases
these values too (crypto-shredding), together with the personal fields of the log. The associated
data binds a sealed value to its purpose and its participant, so a value copied elsewhere does not open.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jmo_eventstore import KeyRing, participant_subject

NONCE_BYTES = 12


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
