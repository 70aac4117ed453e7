"""What the selfie decision needs to know about the picture: claim check, reference, engine.

:func:`judge` is the one place a decision on a selfie's analysis is made; the service (through
:class:`SelfieVerifier`) and ``jmo biometric compare`` both call it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from jmo_contracts.biometric import SelfieRejectionReason as Reason
from jmo_contracts.biometric import SubmitSelfie
from jmo_registries import PopulationRegistry, RegistryError

from ..adapters.blobs import BlobTooLarge, SelfieBlobs
from ..adapters.engine import ENGINE, Analysis, ImageLimits, InvalidImage, embedding_distance, sniff_content_type
from ..adapters.engine_deaths import EngineDeaths
from ..adapters.references import ParticipantFaces
from ..domain.quality import QualityLimits, Verdict, verdict
from ..domain.selfie import DEFAULT_MAX_ENGINE_DEATHS, SelfieCheck, after_engine_deaths

log = structlog.get_logger(__name__)


class Engine(Protocol):
    """The face engine as the application uses it (:class:`~jmo_biometric.adapters.workers.EnginePool`, or in process).

    Both calls raise :class:`~jmo_biometric.adapters.engine.InvalidImage` for a picture that cannot be analysed,
    and ``BrokenProcessPool`` when the worker process died during the call (or while it was queued).
    """

    async def selfie(self, data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis: ...

    async def reference(self, data: bytes, limits: ImageLimits) -> Analysis: ...


@dataclass(frozen=True)
class DecisionPolicy:
    threshold: float
    image_limits: ImageLimits
    quality: QualityLimits
    max_engine_deaths: int = DEFAULT_MAX_ENGINE_DEATHS


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


@dataclass(frozen=True)
class _Picture:
    """A picture on its way to the engine: how logs name it (no bytes, no personal data), and the call."""

    kind: str  #: "selfie" or "ktp_photo"
    sha256: str
    participant_id: str
    analyse: Callable[[], Awaitable[Analysis]]


class SelfieVerifier:
    """Looks up everything the selfie decision needs: the blob (checked), the reference embedding, the analysis.

    A worker process that dies analysing a picture fails :meth:`check` with ``BrokenProcessPool`` (the
    command is redelivered), and the death is counted against the picture in ``deaths``; once the engine
    has died ``policy.max_engine_deaths`` times on a selfie it is refused ``INVALID_IMAGE``, on a KTP
    photo there is no reference (``REFERENCE_UNAVAILABLE``), without analysing it again.
    """

    def __init__(
        self, blobs: SelfieBlobs, faces: ParticipantFaces, registry: PopulationRegistry, engine: Engine, policy: DecisionPolicy, model_version: str,
        deaths: EngineDeaths | None = None,
    ) -> None:
        self.blobs = blobs
        self.faces = faces
        self.registry = registry
        self.engine = engine
        self.policy = policy
        self.model_version = model_version
        self.deaths = deaths or EngineDeaths()

    async def check(self, command: SubmitSelfie) -> SelfieCheck:
        try:
            data = await self.blobs.get(command.blob_id, max_bytes=self.policy.image_limits.max_bytes)
        except BlobTooLarge:
            return refused(Reason.INVALID_IMAGE)
        if data is None or len(data) != command.size_bytes or hashlib.sha256(data).hexdigest() != command.sha256:
            return refused(Reason.CHECKSUM_MISMATCH)
        if sniff_content_type(data) != command.content_type.value:
            return refused(Reason.INVALID_IMAGE)
        limits, participant_id = self.policy.image_limits, command.participant_id
        selfie = _Picture("selfie", command.sha256, participant_id, lambda: self.engine.selfie(data, limits, self.policy.quality))
        reference = await self.faces.reference(participant_id, self.model_version)
        ktp = None if reference is not None else await self._ktp_photo(participant_id)  # the first selfie: from Dukcapil
        # The KTP photo is analysed in the second worker while the first analyses the selfie, unless the
        # engine already died on one of them: a worker's death fails every call in flight, so only a
        # picture analysed alone shows which one kills it (a death while both ran counts against the selfie).
        ktp_call = None
        if ktp is not None and not self.deaths.of(selfie.sha256) and not self.deaths.of(ktp.sha256):
            ktp_call = call = asyncio.ensure_future(ktp.analyse())
            ktp = replace(ktp, analyse=lambda: call)
        try:
            try:
                analysis = await self._analysed(selfie)
            except InvalidImage as e:
                log.info("selfie is not a usable image", why=str(e))
                return SelfieCheck(Verdict(False, (Reason.INVALID_IMAGE,)), ENGINE, self.model_version)
            if isinstance(analysis, Verdict):  # the engine died on it too often
                return SelfieCheck(analysis, ENGINE, self.model_version)
            if ktp is not None:
                reference = await self._reference(ktp)
        finally:
            if ktp_call is not None:  # unfinished when the selfie was refused or its worker died; not needed then
                ktp_call.cancel()
                await asyncio.gather(ktp_call, return_exceptions=True)
        result = judge(analysis, reference, self.policy)
        log.info("selfie analysed", reasons=[r.value for r in result.reasons], distance=result.distance, **analysis.timings_ms)
        return SelfieCheck(result, ENGINE, self.model_version)

    async def _analysed(self, picture: _Picture) -> Analysis | Verdict:
        """The engine's analysis of ``picture``, or the verdict that it is not analysed any more.

        A worker's death is counted against the picture; below the limit ``BrokenProcessPool`` is raised
        again (the command is redelivered and the picture analysed once more). ``InvalidImage`` passes.
        """
        limit = self.policy.max_engine_deaths
        named = {"picture": picture.kind, "sha256_prefix": picture.sha256[:12], "participant_id": picture.participant_id, "max_deaths": limit}
        deaths = self.deaths.of(picture.sha256)
        if (given_up := after_engine_deaths(deaths, limit)) is not None:
            log.warning("picture not analysed: the face engine died on it before", deaths=deaths, **named)
            return given_up
        try:
            analysis = await picture.analyse()
        except BrokenProcessPool:
            deaths = self.deaths.died_on(picture.sha256)
            if (given_up := after_engine_deaths(deaths, limit)) is None:
                log.warning("the face engine died analysing a picture; it is analysed again on redelivery", deaths=deaths, **named)
                raise
            log.error("the face engine died analysing a picture too often; it is not analysed any more", deaths=deaths, **named)
            return given_up
        self.deaths.forget(picture.sha256)
        return analysis

    async def _ktp_photo(self, participant_id: str) -> _Picture | None:
        """The participant's KTP photo from Dukcapil (``RegistryUnavailable`` propagates: the selfie waits;
        a request Dukcapil refuses, ``RegistryError``, leaves the selfie without a reference)."""
        nik = await self.faces.nik(participant_id)
        if nik is None:
            log.warning("no NIK known for the participant (ParticipantRegistered not seen)", participant_id=participant_id)
            return None
        try:
            photo = await self.registry.ktp_photo(nik)
        except RegistryError as refused:  # Dukcapil refuses this very request: no reference, rather than a redelivery loop
            log.error("Dukcapil refuses the KTP photo request; no reference face", participant_id=participant_id, error=str(refused))
            return None
        if photo is None:
            return None
        return _Picture("ktp_photo", hashlib.sha256(photo).hexdigest(), participant_id, lambda: self.engine.reference(photo, self.policy.image_limits))

    async def _reference(self, ktp: _Picture) -> tuple[float, ...] | None:
        """The KTP photo's embedding, computed once and kept sealed; the photo itself is dropped."""
        try:
            analysis = await self._analysed(ktp)
        except InvalidImage:
            log.warning("KTP photo is not a usable image", participant_id=ktp.participant_id)
            return None
        if isinstance(analysis, Verdict):  # the engine died on it too often
            return None
        if analysis.embedding is None:
            log.warning("no face in the KTP photo", participant_id=ktp.participant_id)
            return None
        await self.faces.keep_reference(ktp.participant_id, self.model_version, analysis.embedding)
        return analysis.embedding
