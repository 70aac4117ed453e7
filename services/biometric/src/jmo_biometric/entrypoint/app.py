"""The biometric service process: selfie-vs-KTP verification (SPEC §5.3, §6). Subscribers and wiring:
the rules live in ``domain``, the use cases in :mod:`jmo_biometric.application.selfies`.

* ``ParticipantRegistered`` (registration's events): :meth:`Selfies.remember_participant`.
* ``SubmitSelfie`` (the gateway's commands): :meth:`Selfies.submit`, the picture analysed in the
  engine's worker processes (``adapters.workers``).
* Every ``JMO_BIOMETRIC_BLOB_SWEEP_SECONDS``: :meth:`AbandonedUploads.sweep`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from jmo_contracts import Envelope, topics
from jmo_eventstore import KeyRing
from jmo_registries import PopulationRegistry, close_registry, population_registry
from jmo_runtime import Service, Subscription

from ..adapters.blobs import GridFsSelfieBlobs, SelfieBlobs
from ..adapters.decided import InMemoryDecidedCommands, MongoDecidedCommands
from ..adapters.engine import model_version
from ..adapters.protection import ParticipantSealer
from ..adapters.references import MongoParticipantFaces, ParticipantFaces
from ..adapters.workers import EnginePool
from ..application.selfies import AbandonedUploads, Selfies
from ..application.verification import DecisionPolicy, Engine, SelfieVerifier
from ..domain.selfie import selfie
from ..settings import BiometricSettings

NAME = "biometric"
log = structlog.get_logger(__name__)


def build(
    settings: BiometricSettings, *, registry: PopulationRegistry | None = None, engine: Engine | None = None,
    blobs: SelfieBlobs | None = None, faces: ParticipantFaces | None = None, clock: Callable[[], datetime] | None = None, **overrides: object,
) -> Service:
    """The biometric service. Nothing starts here: the engine pool and the stores come up with the service.
    ``registry``, ``engine``, ``blobs``, ``faces`` and ``clock`` replace Dukcapil, the worker pool, the
    stores and the UTC clock (tests)."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    dukcapil = registry or population_registry(settings.dukcapil_url, timeout=settings.dukcapil_timeout_seconds, breaker_cooldown=settings.dukcapil_breaker_cooldown_seconds)
    policy = DecisionPolicy(settings.biometric_threshold, settings.image_limits(), settings.quality_limits(), settings.biometric_max_engine_deaths)
    pool: EnginePool | None = None
    selfies: Selfies  # built once the store is up (and the engine warm), before any message is consumed
    abandoned: AbandonedUploads

    async def start() -> None:
        nonlocal pool, selfies, abandoned
        if engine is None:
            pool = EnginePool(settings.biometric_workers, detect_max_side=settings.biometric_detect_max_side, work_max_side=settings.biometric_work_max_side)
        version = await pool.warm_up() if pool is not None else model_version()
        blob_db, own_db = service.database_named(settings.blob_database()), service.database
        the_blobs = blobs or (GridFsSelfieBlobs(blob_db) if blob_db is not None else None)
        the_faces = faces or (MongoParticipantFaces(own_db, ParticipantSealer(_keyring(service))) if own_db is not None else None)
        if the_blobs is None or the_faces is None:
            raise RuntimeError("biometric: blob and participant stores are needed without MongoDB")
        selfies = Selfies(
            commands=service.commands(selfie, clock=clock), verifier=SelfieVerifier(the_blobs, the_faces, dukcapil, engine or pool, policy, version),  # type: ignore[arg-type]
            decided=MongoDecidedCommands(own_db) if own_db is not None else InMemoryDecidedCommands(), blobs=the_blobs, faces=the_faces,
            max_attempts=settings.biometric_max_attempts, registry_retry_seconds=settings.dukcapil_retry_seconds,
        )
        abandoned = AbandonedUploads(the_blobs, timedelta(seconds=settings.biometric_blob_max_age_seconds), clock)
        log.info("face engine ready", workers=pool.workers if pool else 0, model_version=version, threshold=policy.threshold)

    async def stop() -> None:
        nonlocal pool
        if pool is not None:
            await asyncio.to_thread(pool.shutdown)
            pool = None
        if registry is None:  # the one built here (a given one is its owner's to close)
            await close_registry(dukcapil)

    service.resource(start, stop)

    async def sweep_abandoned_uploads() -> None:
        await abandoned.sweep()

    async def on_registration_event(envelope: Envelope) -> None:
        await selfies.remember_participant(envelope)

    async def on_command(envelope: Envelope) -> None:
        await selfies.submit(envelope)

    service.every(settings.biometric_blob_sweep_seconds, sweep_abandoned_uploads, name="abandoned-uploads")
    service.consume(
        Subscription(
            topics.events("registration"), on_registration_event,
            "ParticipantRegistered: the participant's NIK, kept sealed as it came (not opened) to fetch the KTP photo later.",
            acts_on=Selfies.REMEMBERS, keeps_sealed=True,
        ),
        Subscription(topics.commands(NAME), on_command, "SubmitSelfie from the mobile gateway (claim check: the image waits in GridFS)."),
    )
    return service


def _keyring(service: Service) -> KeyRing:
    """The participants' data keys its log seals with (the ring every service shares): erasing a
    participant's key erases their NIK and reference embedding kept here too."""
    if service.key_ring is None:
        raise RuntimeError("biometric: JMO_DATA_KEY is required, NIKs and face embeddings are only kept encrypted")
    return service.key_ring
