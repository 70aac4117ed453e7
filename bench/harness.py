"""Measuring: warm-up, then the median of several repetitions, subject and baseline interleaved.

A *trial* is an async function ``trial(round_no) -> Sample``: it prepares its own data (untimed),
times only the work being measured with :class:`Stopwatch`, and returns how many items it handled
in how many seconds. :func:`compare` runs a subject trial and a baseline trial in alternating
order round after round, so that noise from the machine falls on both alike.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

WARMUP_ROUNDS = 1
MEASURED_ROUNDS = 3


@dataclass(frozen=True)
class Sample:
    """``count`` items handled in ``seconds``."""

    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


Trial = Callable[[int], Awaitable[Sample]]


class Stopwatch:
    """``async with Stopwatch() as sw: ...`` then ``sw.seconds``; collects garbage before starting."""

    seconds: float = 0.0

    async def __aenter__(self) -> Stopwatch:
        gc.collect()
        self._start = time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


@dataclass
class Metric:
    """One measured quantity: the subject's median rate and, if it has one, the baseline's."""

    key: str
    title: str
    unit: str
    value: float
    samples: list[float]
    baseline: float | None = None
    baseline_samples: list[float] = field(default_factory=list)
    baseline_is: str = ""
    sizes: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "value": self.value,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "samples": self.samples,
            "baseline_samples": self.baseline_samples,
            "spread": _spread(self.samples),
            "baseline_spread": _spread(self.baseline_samples) if self.baseline_samples else None,
            "baseline_is": self.baseline_is,
            "sizes": self.sizes,
            "note": self.note,
        }


def _spread(samples: list[float]) -> dict[str, float]:
    """Min, max and (max - min) / median of the measured samples."""
    median = statistics.median(samples)
    return {"min": min(samples), "max": max(samples), "relative": (max(samples) - min(samples)) / median if median else 0.0}


async def compare(key: str, title: str, unit: str, subject: Trial, baseline: Trial, *, baseline_is: str, sizes: dict[str, Any], note: str = "") -> Metric:
    """Subject against baseline: warm-up rounds, then measured rounds, alternating who goes first."""
    subject_rates: list[float] = []
    baseline_rates: list[float] = []
    for round_no in range(WARMUP_ROUNDS + MEASURED_ROUNDS):
        order = [(subject, subject_rates), (baseline, baseline_rates)]
        if round_no % 2:
            order.reverse()
        for trial, rates in order:
            sample = await trial(round_no)
            if round_no >= WARMUP_ROUNDS:
                rates.append(sample.rate)
    return Metric(key, title, unit, statistics.median(subject_rates), subject_rates, statistics.median(baseline_rates), baseline_rates, baseline_is, sizes, note)


async def measure(key: str, title: str, unit: str, subject: Trial, *, sizes: dict[str, Any], note: str = "") -> Metric:
    """A rate without a baseline: warm-up rounds, then the median of the measured rounds."""
    rates: list[float] = []
    for round_no in range(WARMUP_ROUNDS + MEASURED_ROUNDS):
        sample = await subject(round_no)
        if round_no >= WARMUP_ROUNDS:
            rates.append(sample.rate)
    return Metric(key, title, unit, statistics.median(rates), rates, sizes=sizes, note=note)
