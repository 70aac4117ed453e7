"""What happens to a selfie before and after the pure decision: claim check, reference, engine, clean-up.

:func:`judge` is the one place a decision on a selfie's analysis is made; the service (through
:class:`SelfieVerifier`) and ``jmo biometric compare`` both call it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Protocol

import structlog

from jmo_contracts.biometric import SelfieRejectionReason as Reason
from jmo_contracts.biometric import SubmitSelfie
from jmo_registries import PopulationRegistry

from .adapters.blobs import BlobTooLarge, SelfieBlobs
from .adapters.references import ParticipantFaces
from .domain.quality import QualityLimits, Verdict, verdict
from .domain.selfie import SelfieCheck
from .engine import ENGINE, Analysis, ImageLimits, InvalidImage, embedding_distance, sniff_content_type

log = structlog.get_logger(__name__)


class Engine(Protocol):
    """The face engine as the application uses it (:class:`~jmo_biometric.workers.EnginePool`, or in process)."""

    async def selfie(self, data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis: ...

    async def reference(self, data: bytes, limits: ImageLimits) -> Analysis: ...


@dataclass(frozen=True)
class DecisionPolicy:
    threshold: float
    image_limits: ImageLimits
    quality: QualityLimits


def judge(selfie: Analysis, reference: tuple[float, ...] | None, policy: DecisionPolicy) -> Verdict:
    """The verdict on an analysed selfie against a reference embedding (``None``: no usable reference)."""
    distance = None
    if selfie.embedding is not None:
        if reference is None:
            return Verdict(False, (Reason.REFERENCE_UNAVAILABLE,))
        distance = embedding_distance(selfie.embedding, reference)
    return verdict(selfie.measures, distance, policy.threshold, policy.quality)


def refused(reason: Reason) -> SelfieCheck:
    return SelfieCheck(Verdict(False, (reason,)))


#: Handed to the decider when its answer cannot depend on the picture (a redelivery, a session already
#: used up or matched): the picture is then never fetched nor analysed.
NOT_LOOKED_AT = refused(Reason.CHECKSUM_MISMATCH)


class SelfieVerifier:
    """Looks up everything the selfie decision needs: the blob (checked), the reference embedding, the analysis."""

    def __init__(self, blobs: SelfieBlobs, faces: ParticipantFaces, registry: PopulationRegistry, engine: Engine, policy: DecisionPolicy, model_version: str) -> None:
        self.blobs = blobs
        self.faces = faces
        self.registry = registry
        self.engine = engine
        self.policy = policy
        self.model_version = model_version

    async def check(self, command: SubmitSelfie) -> SelfieCheck:
        try:
            data = await self.blobs.get(command.blob_id, max_bytes=self.policy.image_limits.max_bytes)
        except BlobTooLarge:
            return refused(Reason.INVALID_IMAGE)
        if data is None or len(data) != command.size_bytes or hashlib.sha256(data).hexdigest() != command.sha256:
            return refused(Reason.CHECKSUM_MISMATCH)
        if sniff_content_type(data) != command.content_type.value:
            return refused(Reason.INVALID_IMAGE)
        reference = await self.faces.reference(command.participant_id, self.model_version)
        # the reference (first time: Dukcapil + a second worker) while the selfie is analysed
        reference_task = None if reference is not None else asyncio.ensure_future(self._reference_from_dukcapil(command.participant_id))
        try:
            try:
                analysis = await self.engine.selfie(data, self.policy.image_limits, self.policy.quality)
            except InvalidImage as e:
                log.info("selfie is not a usable image", why=str(e))
                return SelfieCheck(Verdict(False, (Reason.INVALID_IMAGE,)), ENGINE, self.model_version)
            if reference_task is not None:
                reference = await reference_task
        finally:
            if reference_task is not None and not reference_task.done():
                reference_task.cancel()
                await asyncio.gather(reference_task, return_exceptions=True)
        result = judge(analysis, reference, self.policy)
        log.info("selfie analysed", reasons=[r.value for r in result.reasons], distance=result.distance, **analysis.timings_ms)
        return SelfieCheck(result, ENGINE, self.model_version)

    async def _reference_from_dukcapil(self, participant_id: str) -> tuple[float, ...] | None:
        """The KTP photo's embedding, computed once and kept sealed; the photo itself is dropped."""
        nik = await self.faces.nik(participant_id)
        if nik is None:
            log.warning("no NIK known for the participant (ParticipantRegistered not seen)", participant_id=participant_id)
            return None
        photo = await self.registry.ktp_photo(nik)  # RegistryUnavailable propagates: the selfie waits
        if photo is None:
            return None
        try:
            analysis = await self.engine.reference(photo, self.policy.image_limits)
        except InvalidImage:
            log.warning("KTP photo is not a usable image", participant_id=participant_id)
            return None
        if analysis.embedding is None:
            log.warning("no face in the KTP photo", participant_id=participant_id)
            return None
        await self.faces.keep_reference(participant_id, self.model_version, analysis.embedding)
        return analysis.embedding
