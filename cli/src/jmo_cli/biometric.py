"""``jmo biometric``: the service's face decision on local files (compare two pictures, calibrate the threshold).

Both commands use the biometric service's own code — engine, :func:`jmo_biometric.application.verification.judge`
and the settings (``JMO_BIOMETRIC_THRESHOLD`` and the quality limits) — in this process; they store nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Face verification on local files, with the biometric service's decision code.", no_args_is_help=True)


def _policy(threshold: float | None):  # type: ignore[no-untyped-def]
    from jmo_biometric.application.verification import DecisionPolicy
    from jmo_biometric.settings import DecisionSettings

    settings = DecisionSettings()
    engine_args = {"detect_max_side": settings.biometric_detect_max_side, "work_max_side": settings.biometric_work_max_side}
    return DecisionPolicy(threshold or settings.biometric_threshold, settings.image_limits(), settings.quality_limits()), engine_args


@app.command("compare")
def compare(
    selfie: Annotated[Path, typer.Argument(help="The selfie (JPEG/PNG): quality checks apply.", exists=True, dir_okay=False)],
    reference: Annotated[Path, typer.Argument(help="The reference picture (e.g. a KTP photo).", exists=True, dir_okay=False)],
    threshold: Annotated[float | None, typer.Option(help="Override JMO_BIOMETRIC_THRESHOLD.")] = None,
) -> None:
    """Print one JSON object {match, distance, threshold, reasons, timings, measures} for SELFIE against REFERENCE."""
    from jmo_contracts.biometric import SelfieRejectionReason
    from jmo_biometric.application.verification import judge
    from jmo_biometric.domain.quality import Verdict
    from jmo_biometric.adapters.engine import FaceEngine, InvalidImage

    policy, engine_args = _policy(threshold)
    started = time.perf_counter()
    engine = FaceEngine(**engine_args)
    timings = {"load_models_ms": round((time.perf_counter() - started) * 1000, 1)}
    try:
        ref = engine.analyse_reference(reference.read_bytes(), policy.image_limits)
        timings |= {f"reference_{k}": v for k, v in ref.timings_ms.items()}
        ref_embedding = ref.embedding
    except InvalidImage:
        ref_embedding = None
    try:
        analysis = engine.analyse_selfie(selfie.read_bytes(), policy.image_limits, policy.quality)
        timings |= {f"selfie_{k}": v for k, v in analysis.timings_ms.items()}
        verdict = judge(analysis, ref_embedding, policy)
    except InvalidImage as e:
        verdict = Verdict(False, (SelfieRejectionReason.INVALID_IMAGE,), measures={})
        timings["invalid"] = str(e)  # type: ignore[assignment]
    timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    out = {
        "match": verdict.match,
        "distance": None if verdict.distance is None else round(verdict.distance, 4),
        "threshold": policy.threshold,
        "reasons": [r.value for r in verdict.reasons],
        "timings": timings,
        "measures": verdict.measures,
    }
    typer.echo(json.dumps(out))


@app.command("calibrate")
def calibrate(
    pairs: Annotated[Path, typer.Argument(help="CSV file_a,file_b,same (Yes/No); paths relative to the CSV.", exists=True, dir_okay=False)],
    threshold: Annotated[float | None, typer.Option(help="Override JMO_BIOMETRIC_THRESHOLD.")] = None,
    details: Annotated[bool, typer.Option("--details", help="Also print each pair's outcome, one JSON per line, before the summary.")] = False,
) -> None:
    """Accuracy, TAR and FAR at the configured threshold, the distance distributions, and the best threshold (JSON)."""
    from .calibration import decide_pairs, read_pairs, report
    from jmo_biometric.adapters.engine import FaceEngine

    policy, engine_args = _policy(threshold)
    try:
        labelled = read_pairs(pairs)
    except (ValueError, OSError) as e:
        typer.echo(f"cannot read {pairs}: {e}", err=True)
        raise typer.Exit(2) from None
    engine = FaceEngine(**engine_args)
    outcomes = decide_pairs(labelled, lambda d: engine.analyse_selfie(d, policy.image_limits, policy.quality), lambda d: engine.analyse_reference(d, policy.image_limits), policy)
    if details:
        for o in outcomes:
            typer.echo(json.dumps({"file_a": str(o.pair.a), "file_b": str(o.pair.b), "same": o.pair.same, "match": o.verdict.match, "distance": None if o.distance is None else round(o.distance, 4), "reasons": [r.value for r in o.verdict.reasons]}))
    typer.echo(json.dumps(report(outcomes, policy.threshold)))
