"""The face engine on every core: a process pool whose workers each load the models once.

dlib runs one picture on one core, and the analysis is CPU-bound: in the service's process it would
also stall the event loop (Kafka heartbeats, health). Workers are started with ``spawn`` (no fork of a
process that has driver threads) and pre-loaded, so the first selfie does not pay for model loading.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, TypeVar

import structlog

from ..domain.quality import QualityLimits
from .engine import Analysis, FaceEngine, ImageLimits

_engine: FaceEngine | None = None
log = structlog.get_logger(__name__)
T = TypeVar("T")


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

    :class:`~jmo_biometric.adapters.engine.InvalidImage` raised in a worker arrives here unchanged. A worker that
    dies (killed, out of memory) breaks the pool: it is replaced and the call fails with
    ``BrokenProcessPool`` (as does every other call in flight), so the message is redelivered rather
    than the service staying broken; :class:`~jmo_biometric.application.verification.SelfieVerifier` counts the
    deaths per picture and stops analysing one that kills workers every time.
    """

    def __init__(self, workers: int | None = None, *, detect_max_side: int = 480, work_max_side: int = 1280) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._args = (detect_max_side, work_max_side)
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_load, initargs=self._args)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            if executor is self._executor:
                log.error("a face engine worker died; starting new workers")
                self._executor = self._new_executor()
                executor.shutdown(wait=False, cancel_futures=True)
            raise

    async def warm_up(self) -> str:
        """Start every worker (loading its models) and return the engine's model version."""
        versions = await asyncio.gather(*(self._call(_model_version) for _ in range(self.workers)))
        return versions[0]

    async def selfie(self, data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis:
        return await self._call(_selfie, data, limits, quality)

    async def reference(self, data: bytes, limits: ImageLimits) -> Analysis:
        return await self._call(_reference, data, limits)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
