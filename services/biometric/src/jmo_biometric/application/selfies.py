"""The biometric service's use cases.

* :meth:`Selfies.submit` — ``SubmitSelfie``: a redelivered command (marked decided, by ``_id``) is
  answered from the log without touching the blob; else the blob is fetched and checked, analysed,
  decided (:mod:`jmo_biometric.domain.selfie`), appended, marked decided, and the blob deleted
  (whatever the outcome). While Dukcapil is unavailable the command fails after a pause (it is
  redelivered) and the blob stays until it comes back. A selfie whose answer cannot depend on the
  picture (session of another, matched, used up) is decided without analysing it.
* :meth:`Selfies.remember_participant` — ``ParticipantRegistered``: the participant's NIK is kept,
  sealed as it came on Kafka (no key look-up, see :mod:`jmo_runtime.wire`), to ask Dukcapil for
  the KTP photo later.
* :meth:`AbandonedUploads.sweep` — uploads older than ``max_age`` whose ``SubmitSelfie`` never came
  are deleted, so no picture is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog

from jmo_contracts import Envelope, Message
from jmo_contracts.biometric import SubmitSelfie
from jmo_contracts.registration import ParticipantRegistered
from jmo_registries import RegistryUnavailable
from jmo_runtime import CommandHandler, Rejection
from jmo_runtime.wire import WireSealed

from ..adapters.blobs import SelfieBlobs
from ..adapters.decided import DecidedCommands
from ..adapters.references import ParticipantFaces
from ..domain.selfie import SelfieFacts, SelfieSession, refusal
from .verification import NOT_LOOKED_AT, SelfieVerifier

log = structlog.get_logger(__name__)


def selfie_stream(session_id: str) -> str:
    return f"biometric-{session_id}"


class Selfies:
    """Decides selfies over ``commands`` (the selfie decider's command handler) with what ``verifier``
    finds out about each picture; ``decided`` remembers which commands were decided, ``blobs`` holds
    the uploads, ``faces`` the participants' sealed NIKs and reference embeddings."""

    def __init__(
        self, *, commands: CommandHandler, verifier: SelfieVerifier, decided: DecidedCommands, blobs: SelfieBlobs, faces: ParticipantFaces,
        max_attempts: int, registry_retry_seconds: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.commands, self.verifier, self.decided, self.blobs, self.faces = commands, verifier, decided, blobs, faces
        self.max_attempts, self.registry_retry_seconds, self.sleep = max_attempts, registry_retry_seconds, sleep

    #: registration's events :meth:`remember_participant` acts on (its other events are not even read)
    REMEMBERS = (ParticipantRegistered,)

    async def remember_participant(self, envelope: Envelope) -> None:
        """Keep the NIK of a registered participant: the KTP photo is asked for by NIK. Its consumer
        keeps personal fields sealed (``keeps_sealed``): the NIK is kept as it came, opened only
        at the participant's first selfie; in clear only where no data key is configured."""
        if envelope.type not in {t.TYPE for t in self.REMEMBERS}:
            return
        nik = WireSealed.of(envelope, "nik") or envelope.open().nik  # type: ignore[attr-defined]
        await self.faces.remember_nik(str(envelope.payload["participant_id"]), nik)

    async def submit(self, envelope: Envelope) -> None:
        """Decide a ``SubmitSelfie`` on its session's stream, then forget its picture."""
        command = envelope.open()
        if not isinstance(command, SubmitSelfie):
            await self.commands.handle(envelope)  # the decider ignores it; nothing is appended
            return
        stream = selfie_stream(command.session_id)
        if await self.decided.seen(envelope.message_id):
            # A redelivery: the store answers with the events already logged for it, whatever is decided
            # now, so the picture is not looked at (its blob may be gone) and no new event appears.
            await self.commands.handle(envelope, stream_id=stream, facts=SelfieFacts(NOT_LOOKED_AT, self.max_attempts))
            await self.blobs.delete(command.blob_id)
            return
        try:
            await self.commands.handle(envelope, stream_id=stream, facts=self._facts)
        except RegistryUnavailable:
            log.warning("Dukcapil unavailable; the selfie waits", stream_id=stream)
            await self.sleep(self.registry_retry_seconds)
            raise
        await self.decided.mark(envelope.message_id)
        await self.blobs.delete(command.blob_id)

    async def _facts(self, state: SelfieSession, message: Message) -> SelfieFacts:
        """The picture is looked at only when the answer may depend on it."""
        try:
            answered_without_picture = refusal(state, message, self.max_attempts) is not None  # type: ignore[arg-type]
        except Rejection:
            answered_without_picture = True
        check = NOT_LOOKED_AT if answered_without_picture else await self.verifier.check(message)  # type: ignore[arg-type]
        return SelfieFacts(check, self.max_attempts)


class AbandonedUploads:
    """Deletes uploads whose ``SubmitSelfie`` never came, once older than ``max_age`` (by ``clock``)."""

    def __init__(self, blobs: SelfieBlobs, max_age: timedelta, clock: Callable[[], datetime] | None = None) -> None:
        self.blobs, self.max_age = blobs, max_age
        self.clock = clock or (lambda: datetime.now(UTC))

    async def sweep(self) -> int:
        """Delete what is abandoned now; how many were deleted."""
        if removed := await self.blobs.delete_uploaded_before(self.clock() - self.max_age):
            log.info("abandoned selfie uploads deleted", count=removed)
        return removed
