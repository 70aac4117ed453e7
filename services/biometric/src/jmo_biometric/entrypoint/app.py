"""The biometric service process: selfie-vs-KTP verification (SPEC §5.3, §6); the rules live in ``domain``.

* ``ParticipantRegistered`` (registration's events): the participant's NIK is kept, sealed, to ask
  Dukcapil for the KTP photo later.
* ``SubmitSelfie``: a redelivered command (marked decided, by ``_id``) is answered from the log without
  touching the blob; else the blob is fetched and checked, analysed in a worker process, decided,
  appended, marked decided, and the blob deleted (whatever the outcome). While Dukcapil is unavailable the command is not acknowledged and the blob
  stays until it comes back. A worker process that dies on the picture fails the command too (it is
  redelivered), up to ``JMO_BIOMETRIC_MAX_ENGINE_DEATHS`` deaths on the same picture: then the selfie
  is refused ``INVALID_IMAGE`` and the consumer goes on (``SelfieVerifier``).
* Every ``JMO_BIOMETRIC_BLOB_SWEEP_SECONDS``: uploads older than ``JMO_BIOMETRIC_BLOB_MAX_AGE_SECONDS``
  whose ``SubmitSelfie`` never came are deleted, so no picture is kept.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from jmo_contracts import Envelope, topics
from jmo_contracts.biometric import SubmitSelfie
from jmo_contracts.registration import ParticipantRegistered
from jmo_eventstore import MongoKeyRing
from jmo_registries import EmbeddedPopulationRegistry, HttpPopulationRegistry, PopulationRegistry, RegistryUnavailable
from jmo_runtime import Rejection, Service
from jmo_runtime.service import shared_key_ring

from ..adapters.blobs import GridFsSelfieBlobs, SelfieBlobs
from ..adapters.decided import InMemoryDecidedCommands, MongoDecidedCommands
from ..adapters.protection import ParticipantSealer
from ..adapters.references import MongoParticipantFaces, ParticipantFaces
from ..application import NOT_LOOKED_AT, DecisionPolicy, Engine, SelfieVerifier
from ..domain.selfie import refusal, selfie
from ..settings import BiometricSettings
from ..engine import model_version
from ..workers import EnginePool

NAME = "biometric"
log = structlog.get_logger(__name__)


def build(
    settings: BiometricSettings, *, registry: PopulationRegistry | None = None, engine: Engine | None = None,
    blobs: SelfieBlobs | None = None, faces: ParticipantFaces | None = None, **overrides: object,
) -> Service:
    """The biometric service. Nothing starts here: the engine pool and the stores come up with the service."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    dukcapil = registry or (HttpPopulationRegistry(settings.dukcapil_url, timeout=settings.dukcapil_timeout_seconds) if settings.dukcapil_url else EmbeddedPopulationRegistry())
    policy = DecisionPolicy(settings.biometric_threshold, settings.image_limits(), settings.quality_limits(), settings.biometric_max_engine_deaths)
    parts: dict[str, Any] = {}

    async def start() -> None:
        pool = None
        if engine is None:
            pool = EnginePool(settings.biometric_workers, detect_max_side=settings.biometric_detect_max_side, work_max_side=settings.biometric_work_max_side)
            parts["pool"] = pool
        version = await pool.warm_up() if pool is not None else model_version()
        blob_db = service.database_named(settings.blob_database())
        own_db = service.database
        the_blobs = blobs or (GridFsSelfieBlobs(blob_db) if blob_db is not None else None)
        the_faces = faces or (MongoParticipantFaces(own_db, ParticipantSealer(_keyring(own_db, settings))) if own_db is not None else None)
        if the_blobs is None or the_faces is None:
            raise RuntimeError("biometric: blob and participant stores are needed without MongoDB")
        parts["faces"] = the_faces
        parts["decided"] = MongoDecidedCommands(own_db) if own_db is not None else InMemoryDecidedCommands()
        parts["blobs"] = the_blobs
        parts["verifier"] = SelfieVerifier(the_blobs, the_faces, dukcapil, engine or pool, policy, version)  # type: ignore[arg-type]
        log.info("face engine ready", workers=pool.workers if pool else 0, model_version=version, threshold=policy.threshold)

    async def stop() -> None:
        if (pool := parts.pop("pool", None)) is not None:
            await asyncio.to_thread(pool.shutdown)

    service.resource(start, stop)

    async def sweep_abandoned_uploads() -> None:
        if (the_blobs := parts.get("blobs")) is None:
            return
        cutoff = datetime.now(UTC) - timedelta(seconds=settings.biometric_blob_max_age_seconds)
        if removed := await the_blobs.delete_uploaded_before(cutoff):
            log.info("abandoned selfie uploads deleted", count=removed)

    service.every(settings.biometric_blob_sweep_seconds, sweep_abandoned_uploads, name="abandoned-uploads")

    async def on_registration_event(envelope: Envelope) -> None:
        registered = envelope.open()
        if isinstance(registered, ParticipantRegistered):
            await parts["faces"].remember_nik(registered.participant_id, registered.nik)

    async def on_command(envelope: Envelope) -> None:
        command = envelope.open()
        if not isinstance(command, SubmitSelfie):
            await service.commands(selfie).handle(envelope)  # the decider ignores it; nothing is appended
            return
        verifier: SelfieVerifier = parts["verifier"]
        stream = f"biometric-{command.session_id}"
        facts: dict[str, Any] = {"max_attempts": settings.biometric_max_attempts}
        if await parts["decided"].seen(envelope.message_id):
            # A redelivery: the store answers with the events already logged for it, whatever is decided
            # now, so the picture is not looked at (its blob may be gone) and no new event appears.
            await service.commands(selfie).handle(envelope, stream_id=stream, facts=facts | {"check": NOT_LOOKED_AT})
            await parts["blobs"].delete(command.blob_id)
            return

        async def look_up(state: Any, message: Any) -> dict[str, Any]:
            try:
                answered_without_picture = refusal(state, message, settings.biometric_max_attempts) is not None
            except Rejection:
                answered_without_picture = True
            return facts | {"check": NOT_LOOKED_AT if answered_without_picture else await verifier.check(message)}

        try:
            await service.commands(selfie).handle(envelope, stream_id=stream, facts=look_up)
        except RegistryUnavailable:
            log.warning("Dukcapil unavailable; the selfie waits", stream_id=stream)
            await asyncio.sleep(settings.dukcapil_retry_seconds)
            raise
        await parts["decided"].mark(envelope.message_id)
        await parts["blobs"].delete(command.blob_id)

    service.consume(topics.events("registration"), on_registration_event, "ParticipantRegistered: the participant's NIK, kept sealed to fetch the KTP photo later.")
    service.consume(topics.commands(NAME), on_command, "SubmitSelfie from the mobile gateway (claim check: the image waits in GridFS).")
    return service


def _keyring(database: Any, settings: BiometricSettings) -> MongoKeyRing:
    """The participants' data keys shared by every service (:func:`~jmo_runtime.service.shared_key_ring`), the ring its log's personal fields use."""
    ring = shared_key_ring(database.client, settings)
    if ring is None:
        raise RuntimeError("biometric: JMO_DATA_KEY is required, NIKs and face embeddings are only kept encrypted")
    return ring
