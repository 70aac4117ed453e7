"""The selfie decider over one profile-update session's stream ``biometric-<session_id>``.

The application computes the :class:`SelfieCheck` beforehand (blob, checksum, engine, reference) and
hands it with the session's attempt limit as the decider's facts (:class:`SelfieFacts`, required for
a ``SubmitSelfie``; any other message is ignored and needs none); the decision here is pure:

* a session belongs to the participant of its first selfie; another participant's selfie is refused
  (``CommandRejected`` ``NOT_YOUR_SESSION``); after a match, further selfies are refused
  (``ALREADY_MATCHED``);
* each session allows ``max_attempts`` (``SelfieFacts.max_attempts``) counted attempts; once
  they are used up, every selfie gets ``TOO_MANY_ATTEMPTS`` (which itself uses nothing);
* a counted attempt is any selfie the participant is answerable for: a match, a failed quality check,
  ``NOT_MATCHING`` and ``INVALID_IMAGE`` (also when the picture is refused because the engine died on
  it, :func:`after_engine_deaths`: the event cannot tell the two apart). ``CHECKSUM_MISMATCH`` (the
  upload was damaged or is missing) and ``REFERENCE_UNAVAILABLE`` (no usable KTP photo) are not the
  participant's doing and do not count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jmo_contracts import Event, Message
from jmo_contracts.biometric import SelfieMatched, SelfieRejected, SubmitSelfie
from jmo_contracts.biometric import SelfieRejectionReason as Reason
from jmo_runtime import Context, Decider, Rejection, require

from .quality import GUIDANCE, Verdict

#: Deaths of the face engine's worker process on one picture after which the picture is no longer analysed.
DEFAULT_MAX_ENGINE_DEATHS = 2
REFERENCE_SOURCE = "DUKCAPIL"
#: Refusals that do not use one of the session's attempts.
NOT_COUNTED = frozenset({Reason.CHECKSUM_MISMATCH, Reason.REFERENCE_UNAVAILABLE, Reason.TOO_MANY_ATTEMPTS})


@dataclass(frozen=True)
class SelfieCheck:
    """What the application found out about a selfie before the decision."""

    verdict: Verdict
    engine: str | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class SelfieFacts:
    """What the application hands the decider with a ``SubmitSelfie``."""

    #: What the blob, the engine and the reference said about the picture (:data:`~jmo_biometric.application.verification.NOT_LOOKED_AT`
    #: when the answer cannot depend on it).
    check: SelfieCheck
    #: Counted attempts a session allows (``JMO_BIOMETRIC_MAX_ATTEMPTS``).
    max_attempts: int


@dataclass(frozen=True)
class SelfieSession:
    participant_id: str | None = None
    attempts_used: int = 0
    matched: bool = False


def evolve(state: SelfieSession, event: Message) -> SelfieSession:
    if isinstance(event, SelfieMatched):
        return replace(state, participant_id=event.participant_id, attempts_used=state.attempts_used + 1, matched=True)
    if isinstance(event, SelfieRejected):
        counted = event.reason_code not in NOT_COUNTED
        return replace(state, participant_id=state.participant_id or event.participant_id, attempts_used=state.attempts_used + counted)
    return state


def after_engine_deaths(deaths: int, max_deaths: int) -> Verdict | None:
    """The verdict on a picture the face engine's worker process died on ``deaths`` times (a crash in
    native code, killed out of memory).

    ``None`` below ``max_deaths``: analyse it again, the death may have had another cause (a worker
    killed for memory another picture took). From ``max_deaths`` on the picture is taken as unreadable,
    ``INVALID_IMAGE``, rather than crash workers and block its partition on every redelivery.
    """
    return Verdict(False, (Reason.INVALID_IMAGE,)) if deaths >= max_deaths else None


def refusal(state: SelfieSession, command: SubmitSelfie, max_attempts: int) -> Event | None:
    """The answer that needs no look at the picture (session of another, matched, or used up); else ``None``.

    The application asks this first, so a selfie that will be refused anyway costs no engine time.
    """
    if state.participant_id is not None and state.participant_id != command.participant_id:
        raise Rejection("NOT_YOUR_SESSION", "Sesi ini milik peserta lain")
    if state.matched:
        raise Rejection("ALREADY_MATCHED", "Verifikasi wajah sesi ini sudah berhasil")
    if state.attempts_used >= max_attempts:
        return _rejected(command, state.attempts_used + 1, Reason.TOO_MANY_ATTEMPTS, 0)
    return None


def decide(message: Message, state: SelfieSession, context: Context) -> list[Event]:
    if not isinstance(message, SubmitSelfie):
        return []
    facts = context.facts_as(SelfieFacts)
    max_attempts = facts.max_attempts
    if (early := refusal(state, message, max_attempts)) is not None:
        return [early]
    check = facts.check
    v = check.verdict
    attempt = state.attempts_used + 1
    if v.match:
        require(v.distance is not None and v.threshold is not None and check.engine and check.model_version, "a match carries its distance, threshold, engine and model")
        return [SelfieMatched(
            participant_id=message.participant_id, session_id=message.session_id, attempt=attempt, distance=round(v.distance, 4),
            threshold=v.threshold, engine=check.engine, model_version=check.model_version, reference_source=REFERENCE_SOURCE,
        )]
    reason = v.reason
    require(reason is not None, "a refusal carries its reason")
    used = attempt if reason not in NOT_COUNTED else state.attempts_used
    return [_rejected(
        message, attempt, reason, max(max_attempts - used, 0),
        distance=None if v.distance is None else round(v.distance, 4), threshold=v.threshold, engine=check.engine, model_version=check.model_version,
    )]


def _rejected(command: SubmitSelfie, attempt: int, reason: Reason, attempts_left: int, **comparison: object) -> SelfieRejected:
    return SelfieRejected(
        participant_id=command.participant_id, session_id=command.session_id, attempt=attempt, reason_code=reason,
        reason=GUIDANCE[reason], attempts_left=attempts_left, **comparison,  # type: ignore[arg-type]
    )


selfie: Decider[SelfieSession] = Decider(initial_state=SelfieSession(), decide=decide, evolve=evolve)
