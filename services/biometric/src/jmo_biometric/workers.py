"""The face engine on every core: a process pool whose workers each load the models once.

dlib runs one picture on one core, and the analysis is CPU-bound: in the service's process it would
also stall the event loop (Kafka heartbeats, health). Workers are started with ``spawn`` (no fork of a
process that has driver threads) and pre-loaded, so the first selfie does not pay for model loading.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from .domain.quality import QualityLimits
from .engine import Analysis, FaceEngine, ImageLimits

_engine: FaceEngine | None = None


def _load(detect_max_side: int, work_max_side: int) -> None:
    global _engine
    _engine = FaceEngine(detect_max_side=detect_max_side, work_max_side=work_max_side)


def _selfie(data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis:
    assert _engine is not None
    return _engine.analyse_selfie(data, limits, quality)


def _reference(data: bytes, limits: ImageLimits) -> Analysis:
    assert _engine is not None
    return _engine.analyse_reference(data, limits)


def _model_version() -> str:
    assert _engine is not None
    return _engine.model_version


class EnginePool:
    """``workers`` engines in their own processes; ``await pool.selfie(...)`` keeps the loop free.

    :class:`~jmo_biometric.engine.InvalidImage` raised in a worker arrives here unchanged.
    """

    def __init__(self, workers: int | None = None, *, detect_max_side: int = 480, work_max_side: int = 1280) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._executor = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_load, initargs=(detect_max_side, work_max_side))

    async def warm_up(self) -> str:
        """Start every worker (loading its models) and return the engine's model version."""
        loop = asyncio.get_running_loop()
        versions = await asyncio.gather(*(loop.run_in_executor(self._executor, _model_version) for _ in range(self.workers)))
        return versions[0]

    async def selfie(self, data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis:
        return await asyncio.get_running_loop().run_in_executor(self._executor, _selfie, data, limits, quality)

    async def reference(self, data: bytes, limits: ImageLimits) -> Analysis:
        return await asyncio.get_running_loop().run_in_executor(self._executor, _reference, data, limits)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
