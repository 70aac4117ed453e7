"""The engine pool: answers from worker processes, and recovers when a worker dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from jmo_biometric.domain.quality import QualityLimits
from jmo_biometric.engine import ImageLimits, InvalidImage, nose_offset
from jmo_biometric.workers import EnginePool

FACES = Path(__file__).parent / "data" / "faces"


@pytest.mark.unit
@pytest.mark.parametrize(("nose_x", "expected"), [(50.0, 0.0), (60.0, 0.25), (30.0, -0.5)])
def test_the_nose_offset_is_measured_in_eye_distances(nose_x: float, expected: float) -> None:
    eyes = [(20.0, 40.0), (40.0, 40.0), (60.0, 40.0), (80.0, 40.0)]  # eye centres at x 30 and 70: 40 apart
    assert nose_offset([*eyes, (nose_x, 70.0)]) == pytest.approx(expected)


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
