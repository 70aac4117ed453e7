"""The engine pool: answers from worker processes, and recovers when a worker dies; a picture that
kills workers every time is refused instead of coming back forever."""

from __future__ import annotations

import hashlib
import os
import runpy
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

import pytest

from jmo_biometric.adapters.blobs import InMemorySelfieBlobs
from jmo_biometric.adapters.engine_deaths import EngineDeaths
from jmo_biometric.adapters.protection import ParticipantSealer
from jmo_biometric.adapters.references import InMemoryParticipantFaces
from jmo_biometric.application.verification import DecisionPolicy, SelfieVerifier
from jmo_biometric.domain.quality import QualityLimits
from jmo_biometric.adapters.engine import ImageLimits, InvalidImage, nose_offset
from jmo_biometric.adapters.workers import EnginePool
from jmo_contracts import new_id
from jmo_contracts.biometric import SelfieContentType, SubmitSelfie
from jmo_contracts.biometric import SelfieRejectionReason as Reason
from jmo_eventstore import InMemoryKeyRing

FACES = Path(__file__).parent / "data" / "faces"
JPEG_MAGIC = b"\xff\xd8\xff"


@pytest.mark.unit
@pytest.mark.parametrize(("nose_x", "expected"), [(50.0, 0.0), (60.0, 0.25), (30.0, -0.5)])
def test_the_nose_offset_is_measured_in_eye_distances(nose_x: float, expected: float) -> None:
    eyes = [(20.0, 40.0), (40.0, 40.0), (60.0, 40.0), (80.0, 40.0)]  # eye centres at x 30 and 70: 40 apart
    assert nose_offset([*eyes, (nose_x, 70.0)]) == pytest.approx(expected)


@pytest.mark.unit
def test_engine_deaths_are_counted_per_picture_forgotten_when_it_is_analysed_and_bounded() -> None:
    deaths = EngineDeaths(capacity=2)
    assert (deaths.died_on("a"), deaths.died_on("a"), deaths.died_on("b"), deaths.of("a")) == (1, 2, 1, 2)
    deaths.forget("b")
    assert deaths.of("b") == 0
    deaths.died_on("c")
    deaths.died_on("a")  # now the latest: "c" is the oldest
    deaths.died_on("d")
    assert (deaths.of("a"), deaths.of("c"), deaths.of("d")) == (3, 0, 1)


@pytest.mark.integration
async def test_the_pool_analyses_in_workers_and_replaces_a_worker_that_died() -> None:
    from concurrent.futures.process import BrokenProcessPool

    pool = EnginePool(1)
    try:
        assert (await pool.warm_up()).startswith("dlib_face_recognition_resnet_model_v1")
        analysis = await pool.selfie((FACES / "obama2.jpg").read_bytes(), ImageLimits(), QualityLimits())
        assert analysis.embedding is not None and len(analysis.embedding) == 128
        with pytest.raises(InvalidImage):
            await pool.selfie(b"not an image", ImageLimits(), QualityLimits())
        for pid in list(pool._executor._processes):  # noqa: SLF001 - a worker killed from outside
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await pool.selfie((FACES / "obama2.jpg").read_bytes(), ImageLimits(), QualityLimits())
        again = await pool.selfie((FACES / "obama2.jpg").read_bytes(), ImageLimits(), QualityLimits())
        assert again.embedding == analysis.embedding
    finally:
        pool.shutdown()


class FaultyPool(EnginePool):
    """The real pool, whose workers run ``faulty_worker.py`` (killing themselves on chosen pictures) instead of the models."""

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=runpy.run_path, initargs=(str(Path(__file__).parent / "faulty_worker.py"),))


class Dukcapil:
    async def ktp_photo(self, nik: str) -> bytes | None:
        return JPEG_MAGIC + b"ktp"


@pytest.mark.integration
async def test_a_worker_killed_on_a_selfie_once_is_retried_every_time_it_is_refused_invalid_image(tmp_path: Path) -> None:
    """Real worker processes: a death fails every call in flight, so on a participant's first selfie it
    also fails the KTP photo analysed in the other worker; the count still ends on the right picture."""
    blobs, faces = InMemorySelfieBlobs(), InMemoryParticipantFaces(ParticipantSealer(InMemoryKeyRing()))
    pool = FaultyPool(2)
    verifier = SelfieVerifier(blobs, faces, Dukcapil(), pool, DecisionPolicy(0.6, ImageLimits(), QualityLimits()), "faulty-test-engine")  # type: ignore[arg-type]

    async def submit(participant_id: str, word: bytes) -> SubmitSelfie:
        data = JPEG_MAGIC + word
        blob_id = await blobs.put(data, content_type="image/jpeg")
        return SubmitSelfie(participant_id=participant_id, session_id=new_id(), blob_id=blob_id, sha256=hashlib.sha256(data).hexdigest(), content_type=SelfieContentType.JPEG, size_bytes=len(data))

    first, second = new_id(), new_id()
    for pid in (first, second):
        await faces.remember_nik(pid, "3201014508900001")
    try:
        once = await submit(first, b"once:" + str(tmp_path / "died").encode())
        with pytest.raises(BrokenProcessPool):
            await verifier.check(once)
        assert (await verifier.check(once)).verdict.match  # analysed again in a new worker: no death this time
        assert await faces.reference(first, "faulty-test-engine") is not None

        poison = await submit(second, b"poison")
        with pytest.raises(BrokenProcessPool):  # together with the KTP photo: counted against the selfie
            await verifier.check(poison)
        refused = await verifier.check(poison)  # alone: the second death
        assert (refused.verdict.reasons, verifier.deaths.of(poison.sha256)) == ((Reason.INVALID_IMAGE,), 2)
        assert await faces.reference(second, "faulty-test-engine") is None

        assert (await verifier.check(await submit(second, b"fine"))).verdict.match  # the next selfie, the new workers
    finally:
        pool.shutdown()
