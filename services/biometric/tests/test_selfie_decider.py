"""The selfie decider and the quality rules, given / when / then (pure, no engine)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jmo_contracts.biometric import SelfieContentType, SelfieMatched, SelfieRejected, SubmitSelfie
from jmo_contracts.biometric import SelfieRejectionReason as Reason
from jmo_biometric.domain.quality import FaceMeasures, ImageMeasures, QualityLimits, Verdict, quality_reasons, verdict
from jmo_biometric.domain.selfie import SelfieCheck, SelfieFacts, SelfieSession, after_engine_deaths, selfie
from jmo_runtime import Context, Rejection

pytestmark = pytest.mark.unit

PID = "ab" * 16
OTHER = "cd" * 16
SESSION = "ef" * 16
CONTEXT_AT = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
LIMITS = QualityLimits()
GOOD_FACE = FaceMeasures(width_px=250, width_fraction=0.3, in_frame=True, nose_offset=0.05, brightness=130, sharpness=300)
MATCH = SelfieCheck(Verdict(True, (), 0.38, 0.5), "face_recognition", "model-v1")


def submit(participant_id: str = PID) -> SubmitSelfie:
    return SubmitSelfie(participant_id=participant_id, session_id=SESSION, blob_id="6741f0c2a9e3b15d7c8e4f21", sha256="0" * 64, content_type=SelfieContentType.JPEG, size_bytes=1000)


def rejection(reason: Reason, distance: float | None = None) -> SelfieCheck:
    return SelfieCheck(Verdict(False, (reason,), distance, 0.5 if distance is not None else None), "face_recognition", "model-v1")


def decide(history: list[object], check: SelfieCheck, participant_id: str = PID, max_attempts: int = 3) -> list[object]:
    state = selfie.fold(history)  # type: ignore[arg-type]
    context = Context(now=CONTEXT_AT, stream_id=f"biometric-{SESSION}", facts=SelfieFacts(check, max_attempts))
    return list(selfie.decide(submit(participant_id), state, context))


def after(*checks: SelfieCheck) -> list[object]:
    history: list[object] = []
    for check in checks:
        history += decide(history, check)
    return history


# -- quality rules ---------------------------------------------------------------------------


def one(**changes: object) -> ImageMeasures:
    from dataclasses import replace

    return ImageMeasures((replace(GOOD_FACE, **changes),), scene_brightness=120)


@pytest.mark.parametrize(
    ("measures", "reasons"),
    [
        (ImageMeasures((), 120), [Reason.NO_FACE]),
        (ImageMeasures((), 20), [Reason.TOO_DARK]),
        (ImageMeasures((GOOD_FACE, GOOD_FACE), 120), [Reason.MULTIPLE_FACES]),
        (one(), []),
        (one(in_frame=False), [Reason.FACE_CUT_OFF]),
        (one(width_px=60), [Reason.FACE_TOO_SMALL]),
        (one(width_fraction=0.1), [Reason.FACE_TOO_SMALL]),
        (one(nose_offset=-0.45), [Reason.NOT_FRONTAL]),
        (one(brightness=30), [Reason.TOO_DARK]),
        (one(brightness=240), [Reason.TOO_BRIGHT]),
        (one(sharpness=5), [Reason.BLURRY]),
        (one(in_frame=False, sharpness=5), [Reason.FACE_CUT_OFF, Reason.BLURRY]),
    ],
)
def test_each_quality_check_has_its_own_reason(measures: ImageMeasures, reasons: list[Reason]) -> None:
    assert quality_reasons(measures, LIMITS) == reasons


def test_a_good_picture_matches_at_the_threshold_and_not_above_it() -> None:
    assert verdict(one(), 0.5, 0.5, LIMITS).match
    above = verdict(one(), 0.51, 0.5, LIMITS)
    assert (above.match, above.reasons, above.distance, above.threshold) == (False, (Reason.NOT_MATCHING,), 0.51, 0.5)


def test_a_failed_quality_check_decides_without_a_distance() -> None:
    result = verdict(one(brightness=10), None, 0.5, LIMITS)
    assert (result.match, result.reason, result.distance) == (False, Reason.TOO_DARK, None)


# -- the session: attempts and outcomes -----------------------------------------------------


def test_a_matching_selfie_is_matched_with_distance_threshold_engine_and_model() -> None:
    [event] = decide([], MATCH)
    assert isinstance(event, SelfieMatched)
    assert (event.attempt, event.distance, event.threshold, event.engine, event.model_version, event.reference_source) == (1, 0.38, 0.5, "face_recognition", "model-v1", "DUKCAPIL")


def test_a_refused_selfie_says_why_in_bahasa_and_how_many_attempts_are_left() -> None:
    [event] = decide([], rejection(Reason.NOT_MATCHING, 0.71))
    assert isinstance(event, SelfieRejected)
    assert (event.reason_code, event.attempts_left, event.distance, event.threshold) == (Reason.NOT_MATCHING, 2, 0.71, 0.5)
    assert "KTP" in event.reason


def test_after_three_counted_attempts_every_selfie_gets_too_many_attempts_even_a_good_one() -> None:
    history = after(rejection(Reason.BLURRY), rejection(Reason.TOO_DARK), rejection(Reason.INVALID_IMAGE))
    assert [e.attempts_left for e in history] == [2, 1, 0]  # type: ignore[attr-defined]
    [event] = decide(history, MATCH)
    assert isinstance(event, SelfieRejected) and (event.reason_code, event.attempts_left, event.attempt) == (Reason.TOO_MANY_ATTEMPTS, 0, 4)
    assert selfie.fold([*history, event]).attempts_used == 3


def test_a_damaged_upload_or_a_missing_reference_uses_no_attempt() -> None:
    history = after(rejection(Reason.CHECKSUM_MISMATCH), rejection(Reason.REFERENCE_UNAVAILABLE))
    assert [e.attempts_left for e in history] == [3, 3]  # type: ignore[attr-defined]
    assert selfie.fold(history) == SelfieSession(participant_id=PID, attempts_used=0)


def test_a_picture_the_engine_died_on_is_analysed_again_until_the_limit_then_refused_as_invalid_image() -> None:
    assert after_engine_deaths(0, 2) is None and after_engine_deaths(1, 2) is None
    given_up = after_engine_deaths(2, 2)
    assert given_up is not None and (given_up.match, given_up.reasons) == (False, (Reason.INVALID_IMAGE,))
    [event] = decide([], SelfieCheck(given_up, "face_recognition", "model-v1"))
    assert (event.reason_code, event.attempts_left) == (Reason.INVALID_IMAGE, 2)  # type: ignore[attr-defined]  # as any INVALID_IMAGE


def test_the_number_of_attempts_is_configuration() -> None:
    [event] = decide([], rejection(Reason.BLURRY), max_attempts=1)
    assert event.attempts_left == 0  # type: ignore[attr-defined]


def test_another_participants_selfie_in_the_session_is_refused() -> None:
    history = after(rejection(Reason.BLURRY))
    with pytest.raises(Rejection) as refused:
        decide(history, MATCH, participant_id=OTHER)
    assert refused.value.reason_code == "NOT_YOUR_SESSION"


def test_after_a_match_the_session_takes_no_more_selfies() -> None:
    history = after(MATCH)
    with pytest.raises(Rejection) as refused:
        decide(history, MATCH)
    assert refused.value.reason_code == "ALREADY_MATCHED"
