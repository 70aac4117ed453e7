"""Choosing and checking the biometric service's threshold on labelled pairs (``jmo biometric calibrate``,
``make bench``): an offline tool over the service's engine and decision code, not part of the service.

A pairs file is CSV ``file_a,file_b,same`` (``Yes``/``No``; a header line is allowed); paths are
relative to the file. ``file_a`` is taken as the selfie (quality checks apply), ``file_b`` as the
reference. Each picture is analysed once.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from jmo_biometric.adapters.engine import Analysis, InvalidImage
from jmo_biometric.application.verification import DecisionPolicy, judge
from jmo_biometric.domain.quality import Verdict


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool


@dataclass(frozen=True)
class Outcome:
    pair: Pair
    verdict: Verdict
    distance: float | None  #: also when the verdict was a quality refusal, if both faces were embedded


def read_pairs(path: Path) -> list[Pair]:
    """The labelled pairs of a CSV file (``Yes``/``No``, case-insensitive; a header is skipped)."""
    pairs = []
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            if not row or row[0].strip().startswith("#"):
                continue
            a, b, same = (c.strip() for c in row[:3])
            if same.lower() not in {"yes", "no"}:
                if not pairs and same.lower() == "same":
                    continue  # header
                raise ValueError(f"{path}: 'same' must be Yes or No, got {same!r}")
            pairs.append(Pair(path.parent / a, path.parent / b, same.lower() == "yes"))
    return pairs


def decide_pairs(pairs: Iterable[Pair], analyse_selfie: Callable[[bytes], Analysis], analyse_reference: Callable[[bytes], Analysis], policy: DecisionPolicy) -> list[Outcome]:
    """Every pair decided with the service's decision code (:func:`judge`), each picture analysed once."""
    selfies: dict[Path, Analysis | None] = {}
    references: dict[Path, Analysis | None] = {}

    def once(cache: dict[Path, Analysis | None], path: Path, analyse: Callable[[bytes], Analysis]) -> Analysis | None:
        if path not in cache:
            try:
                cache[path] = analyse(path.read_bytes())
            except InvalidImage:
                cache[path] = None
        return cache[path]

    out = []
    for pair in pairs:
        selfie = once(selfies, pair.a, analyse_selfie)
        reference = once(references, pair.b, analyse_reference)
        if selfie is None:
            from jmo_contracts.biometric import SelfieRejectionReason

            out.append(Outcome(pair, Verdict(False, (SelfieRejectionReason.INVALID_IMAGE,)), None))
            continue
        verdict = judge(selfie, reference.embedding if reference else None, policy)
        distance = verdict.distance
        if distance is None and reference is not None and reference.embedding is not None:
            distance = _distance_even_if_refused(selfie, pair.a, analyse_reference, reference)
        out.append(Outcome(pair, verdict, distance))
    return out


def _distance_even_if_refused(selfie: Analysis, path: Path, analyse_reference: Callable[[bytes], Analysis], reference: Analysis) -> float | None:
    from .engine import embedding_distance

    if selfie.embedding is None:
        as_reference = analyse_reference(path.read_bytes())
        if as_reference.embedding is None or reference.embedding is None:
            return None
        return embedding_distance(as_reference.embedding, reference.embedding)
    assert reference.embedding is not None
    return embedding_distance(selfie.embedding, reference.embedding)


def rates(outcomes: list[tuple[float | None, bool]], threshold: float) -> dict[str, float]:
    """Accuracy, TAR (same-person pairs accepted) and FAR (different-person pairs accepted) at ``threshold``;
    a pair without a distance counts as not accepted."""
    same = [d for d, s in outcomes if s]
    different = [d for d, s in outcomes if not s]
    accepted = lambda d: d is not None and d <= threshold  # noqa: E731
    tar = sum(map(accepted, same)) / len(same) if same else float("nan")
    far = sum(map(accepted, different)) / len(different) if different else float("nan")
    correct = sum(map(accepted, same)) + sum(not accepted(d) for d in different)
    return {"accuracy": correct / len(outcomes) if outcomes else float("nan"), "tar": tar, "far": far}


def best_threshold(outcomes: list[tuple[float | None, bool]]) -> tuple[float, float]:
    """The threshold with the best accuracy on the pairs, in the middle of the best range; and that accuracy."""
    distances = sorted({d for d, _ in outcomes if d is not None})
    if not distances:
        return float("nan"), float("nan")
    candidates = [distances[0] / 2] + [(x + y) / 2 for x, y in zip(distances, distances[1:], strict=False)] + [distances[-1] + 0.01]
    scored = [(rates(outcomes, t)["accuracy"], t) for t in candidates]
    best = max(a for a, _ in scored)
    tied = [t for a, t in scored if a == best]
    return round((tied[0] + tied[-1]) / 2, 3), best


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)
    return {"n": len(v), "min": round(v[0], 3), "median": round(v[len(v) // 2], 3), "max": round(v[-1], 3)}


def report(outcomes: list[Outcome], threshold: float) -> dict[str, object]:
    """What ``jmo biometric calibrate`` prints: rates with the full decision, distance distributions, best threshold."""
    decided = [(o.verdict.distance if o.verdict.match else None, o.pair.same) for o in outcomes]
    full = rates(decided, threshold)
    measured = [(o.distance, o.pair.same) for o in outcomes]
    best, best_accuracy = best_threshold(measured)
    return {
        "pairs": len(outcomes),
        "threshold": threshold,
        "accuracy": round(sum(o.verdict.match == o.pair.same for o in outcomes) / len(outcomes), 4) if outcomes else None,
        "tar": round(full["tar"], 4),
        "far": round(full["far"], 4),
        "refused_before_comparison": sum(1 for o in outcomes if o.verdict.distance is None),
        "distance_same": summary([o.distance for o in outcomes if o.pair.same and o.distance is not None]),
        "distance_different": summary([o.distance for o in outcomes if not o.pair.same and o.distance is not None]),
        "best_threshold": best,
        "best_threshold_accuracy": round(best_accuracy, 4),
    }
