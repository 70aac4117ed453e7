"""The OTP policy of SPEC §4, given / when / then, grouped by use case: requesting a code, submitting one."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from jmo_contracts.common import OtpChannel
from jmo_contracts.identity import NikVerified, OtpIssued, OtpPurpose, OtpRejected, OtpRejectionReason, OtpVerified
from jmo_identity.adapters import crypto
from jmo_identity.domain.otp import CodeStatus, OtpPolicy, OtpRefusal, OtpState, evolve, initial_state, issue, verify
from jmo_runtime import Rejection, sealing

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
PARTICIPANT = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
COMMAND_ID = "6f1c2a9e0d4b4c1f9a7e3b2d1c0f9e8a"
EMAIL = "siti.aminah@example.com"
PHONE = "+6281234567890"
POLICY = OtpPolicy()
REG = OtpPurpose.REGISTRATION
CHANGE = OtpPurpose.CONTACT_CHANGE
SESSION = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"


def otp_id(n: int) -> str:
    return f"{n:032x}"


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


def fold(*events: object) -> OtpState:
    state = initial_state
    for event in events:
        state = evolve(state, event)  # type: ignore[arg-type]
    return state


def request(state: OtpState, now: datetime, n: int, *, purpose: OtpPurpose = REG, channel: OtpChannel = OtpChannel.EMAIL, policy: OtpPolicy = POLICY, destination: str = EMAIL) -> OtpIssued:
    return issue(
        state,
        policy,
        now,
        participant_id=PARTICIPANT,
        otp_id=otp_id(n),
        code_hmac=f"{n:064x}",
        key_id="otp-hmac-2026-11",
        channel=channel,
        destination=destination,
        purpose=purpose,
        profile_update_session_id=SESSION if purpose is CHANGE else None,
    )


def given_codes(*moments: datetime, **kwargs: object) -> OtpState:
    """A state in which a code was issued at each moment (numbered 1, 2, …)."""
    state = initial_state
    for n, moment in enumerate(moments, start=1):
        state = evolve(state, request(state, moment, n, **kwargs))  # type: ignore[arg-type]
    return state


def refusal(state: OtpState, now: datetime, n: int, **kwargs: object) -> OtpRefusal:
    with pytest.raises(OtpRefusal) as info:
        request(state, now, n, **kwargs)  # type: ignore[arg-type]
    return info.value


def submit(state: OtpState, now: datetime, *, matches: bool, otp: str | None = None, purpose: OtpPurpose = REG) -> OtpVerified | OtpRejected:
    return verify(state, now, participant_id=PARTICIPANT, purpose=purpose, otp_id=otp, matches=matches, command_id=COMMAND_ID)


def wrong_times(state: OtpState, times: int, now: datetime = T0) -> tuple[OtpState, list[OtpVerified | OtpRejected]]:
    outcomes = []
    for _ in range(times):
        outcome = submit(state, now, matches=False)
        outcomes.append(outcome)
        state = evolve(state, outcome)
    return state, outcomes


# --- Requesting a code ------------------------------------------------------------------------


def test_a_first_request_issues_a_code_valid_for_five_minutes_recording_only_its_hmac() -> None:
    event = request(initial_state, T0, 1)
    assert (event.issued_at, event.expires_at, event.max_attempts) == (T0, at(minutes=5), 5)
    assert (event.otp_id, event.code_hmac, event.hmac_key_id) == (otp_id(1), f"{1:064x}", "otp-hmac-2026-11")
    assert event.destination == EMAIL and EMAIL not in event.destination_masked
    assert "code" not in OtpIssued.model_fields


def test_a_resend_within_sixty_seconds_is_refused_with_the_time_it_becomes_possible() -> None:
    state = given_codes(T0)
    refused = refusal(state, at(seconds=59, microseconds=999_999), 2)
    assert (refused.reason_code, refused.retry_at, refused.otp_id) == ("RESEND_TOO_SOON", at(seconds=60), otp_id(1))


def test_a_resend_exactly_sixty_seconds_later_is_issued_and_replaces_the_previous_code() -> None:
    state = given_codes(T0, at(seconds=60))
    assert [c.status for c in state.codes] == [CodeStatus.REPLACED, CodeStatus.ACTIVE]


def test_the_cooldown_counts_from_the_latest_code_not_the_first() -> None:
    state = given_codes(T0, at(seconds=60))
    assert refusal(state, at(seconds=119), 3).retry_at == at(seconds=120)


def test_a_code_for_another_channel_is_not_held_back_by_the_cooldown_and_both_stay_valid() -> None:
    state = given_codes(T0, purpose=CHANGE, destination="siti.baru@example.com")
    state = evolve(state, request(state, at(seconds=1), 2, purpose=CHANGE, channel=OtpChannel.SMS, destination="+6281298765432"))
    assert [c.status for c in state.codes] == [CodeStatus.ACTIVE, CodeStatus.ACTIVE]


def test_a_sixth_code_within_an_hour_is_refused_until_the_first_one_leaves_the_window() -> None:
    state = given_codes(*(at(minutes=m) for m in (0, 1, 2, 3, 4)))
    refused = refusal(state, at(minutes=5), 6)
    assert (refused.reason_code, refused.retry_at) == ("HOURLY_LIMIT", at(hours=1))


def test_the_window_rolls_a_code_issued_exactly_an_hour_ago_no_longer_counts() -> None:
    state = given_codes(*(at(minutes=m) for m in (0, 1, 2, 3, 4)))
    assert refusal(state, at(hours=1, microseconds=-1), 6).reason_code == "HOURLY_LIMIT"
    assert request(state, at(hours=1), 6).issued_at == at(hours=1)


def test_after_the_window_rolls_on_the_next_retry_time_is_set_by_the_second_oldest_code() -> None:
    state = given_codes(*(at(minutes=m) for m in (0, 10, 20, 30, 40)))
    state = evolve(state, request(state, at(minutes=60), 6))
    assert refusal(state, at(minutes=61), 7).retry_at == at(minutes=70)


def test_the_hourly_limit_counts_the_codes_of_every_purpose_and_channel() -> None:
    state = initial_state
    slots = [(REG, OtpChannel.EMAIL), (REG, OtpChannel.SMS), (CHANGE, OtpChannel.EMAIL), (CHANGE, OtpChannel.SMS), (REG, OtpChannel.EMAIL)]
    for n, (purpose, channel) in enumerate(slots, start=1):
        state = evolve(state, request(state, at(minutes=n), n, purpose=purpose, channel=channel))
    assert refusal(state, at(minutes=7), 6, purpose=CHANGE, channel=OtpChannel.SMS).reason_code == "HOURLY_LIMIT"


def test_when_cooldown_and_hourly_limit_both_apply_the_one_lifting_later_is_reported() -> None:
    # Five codes; the oldest leaves the window 10 s after the last one's cooldown would end, and vice versa.
    late_window = given_codes(at(seconds=-3530), at(seconds=-3000), at(seconds=-2000), at(seconds=-1000), T0)
    refused = refusal(late_window, at(seconds=30), 6)
    assert (refused.reason_code, refused.retry_at) == ("HOURLY_LIMIT", at(seconds=70))
    early_window = given_codes(at(seconds=-3590), at(seconds=-3000), at(seconds=-2000), at(seconds=-1000), T0)
    refused = refusal(early_window, at(seconds=5), 6)
    assert (refused.reason_code, refused.retry_at) == ("RESEND_TOO_SOON", at(seconds=60))


def test_a_registration_code_is_not_issued_once_the_registration_contact_is_verified() -> None:
    state = given_codes(T0)
    state = evolve(state, submit(state, at(seconds=10), matches=True))
    assert refusal(state, at(minutes=2), 2).reason_code == "ALREADY_VERIFIED"
    assert request(state, at(minutes=2), 2, purpose=CHANGE).purpose is CHANGE


def test_a_request_without_a_destination_is_refused_as_contact_required() -> None:
    assert refusal(initial_state, T0, 1, destination="  ").reason_code == "CONTACT_REQUIRED"


def test_every_number_of_the_policy_is_configurable() -> None:
    policy = OtpPolicy(code_length=8, validity=timedelta(minutes=10), max_attempts=3, resend_cooldown=timedelta(seconds=30), max_codes_per_window=2, window=timedelta(minutes=30))
    event = request(initial_state, T0, 1, policy=policy)
    assert (event.expires_at, event.max_attempts) == (at(minutes=10), 3)
    state = fold(event)
    assert refusal(state, at(seconds=29), 2, policy=policy).retry_at == at(seconds=30)
    state = evolve(state, request(state, at(seconds=30), 2, policy=policy))
    assert refusal(state, at(minutes=1), 3, policy=policy).retry_at == at(minutes=30)


@pytest.mark.parametrize(
    "changes",
    [{"code_length": 3}, {"code_length": 11}, {"max_attempts": 0}, {"max_codes_per_window": 0}, {"validity": timedelta(0)}, {"window": timedelta(0)}, {"resend_cooldown": timedelta(seconds=-1)}],
)
def test_a_policy_that_makes_no_sense_is_refused_at_configuration(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OtpPolicy(**changes)  # type: ignore[arg-type]


def test_a_refusal_is_a_rejection_and_becomes_the_contracts_otp_rejected_with_its_retry_time() -> None:
    refused = refusal(given_codes(T0), at(seconds=10), 2)
    assert isinstance(refused, Rejection)
    event = refused.as_event(participant_id=PARTICIPANT, purpose=REG, command_id=COMMAND_ID)
    assert (event.reason_code, event.retry_at, event.command_id, event.otp_id) == (OtpRejectionReason.RESEND_TOO_SOON, at(seconds=60), COMMAND_ID, otp_id(1))
    assert evolve(given_codes(T0), event) == given_codes(T0)


def test_time_without_a_time_zone_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        request(initial_state, datetime(2026, 11, 21, 8, 30), 1)  # noqa: DTZ001


def test_an_otp_id_cannot_be_reused() -> None:
    with pytest.raises(ValueError):
        request(given_codes(T0), at(minutes=2), 1)


# --- Submitting a code ------------------------------------------------------------------------


def test_the_right_code_in_time_verifies_the_contact_at_the_first_attempt() -> None:
    outcome = submit(given_codes(T0), at(minutes=1), matches=True)
    assert isinstance(outcome, OtpVerified)
    assert (outcome.otp_id, outcome.purpose, outcome.channel, outcome.destination, outcome.attempts) == (otp_id(1), REG, OtpChannel.EMAIL, EMAIL, 1)


def test_the_right_code_a_moment_before_five_minutes_is_accepted_and_at_five_minutes_it_has_expired() -> None:
    state = given_codes(T0)
    assert isinstance(submit(state, at(minutes=5, microseconds=-1), matches=True), OtpVerified)
    expired = submit(state, at(minutes=5), matches=True)
    assert isinstance(expired, OtpRejected)
    assert (expired.reason_code, expired.otp_id) == (OtpRejectionReason.EXPIRED, otp_id(1))


def test_an_expired_submission_does_not_use_an_attempt() -> None:
    state = given_codes(T0)
    assert evolve(state, submit(state, at(minutes=6), matches=False)) == state


def test_each_wrong_code_says_how_many_attempts_are_left_and_the_fifth_kills_the_code() -> None:
    state, outcomes = wrong_times(given_codes(T0), 5)
    assert [(o.reason_code, o.attempts_left) for o in outcomes] == [  # type: ignore[union-attr]
        ("WRONG_CODE", 4), ("WRONG_CODE", 3), ("WRONG_CODE", 2), ("WRONG_CODE", 1), ("TOO_MANY_ATTEMPTS", 0),
    ]
    assert state.codes[0].status is CodeStatus.DEAD
    assert "4" in outcomes[0].reason and "482913" not in outcomes[0].reason  # type: ignore[union-attr]


def test_a_dead_code_refuses_even_the_right_code() -> None:
    state, _ = wrong_times(given_codes(T0), 5)
    outcome = submit(state, at(minutes=1), matches=True)
    assert isinstance(outcome, OtpRejected)
    assert (outcome.reason_code, outcome.attempts_left) == ("TOO_MANY_ATTEMPTS", 0)
    assert evolve(state, outcome) == state


def test_the_right_code_after_four_wrong_ones_verifies_and_counts_five_attempts() -> None:
    state, _ = wrong_times(given_codes(T0), 4)
    outcome = submit(state, at(minutes=1), matches=True)
    assert isinstance(outcome, OtpVerified) and outcome.attempts == 5


def test_a_new_code_after_a_dead_one_starts_with_all_its_attempts() -> None:
    state, _ = wrong_times(given_codes(T0), 5)
    state = evolve(state, request(state, at(minutes=1), 2))
    outcome = submit(state, at(minutes=2), matches=False)
    assert (outcome.otp_id, outcome.attempts_left) == (otp_id(2), 4)  # type: ignore[union-attr]


def test_the_attempt_limit_recorded_on_the_code_applies_not_a_later_policy() -> None:
    state = fold(request(initial_state, T0, 1, policy=OtpPolicy(max_attempts=2)))
    _, outcomes = wrong_times(state, 2)
    assert [o.reason_code for o in outcomes] == ["WRONG_CODE", "TOO_MANY_ATTEMPTS"]  # type: ignore[union-attr]


def test_wrong_attempts_survive_a_restart_because_the_state_folds_from_the_log() -> None:
    issued = request(initial_state, T0, 1)
    state, outcomes = wrong_times(fold(issued), 3)
    assert fold(issued, *outcomes) == state
    assert state.codes[0].attempts_left == 2


def test_without_any_code_a_submission_is_refused_as_no_active_code() -> None:
    outcome = submit(initial_state, T0, matches=False)
    assert isinstance(outcome, OtpRejected)
    assert (outcome.reason_code, outcome.otp_id, outcome.command_id) == ("NO_ACTIVE_CODE", None, COMMAND_ID)


@pytest.mark.parametrize(("otp", "purpose"), [(otp_id(99), REG), (otp_id(1), CHANGE)])
def test_an_unknown_otp_id_or_one_of_another_purpose_is_refused_as_no_active_code(otp: str, purpose: OtpPurpose) -> None:
    assert submit(given_codes(T0), at(minutes=1), matches=True, otp=otp, purpose=purpose).reason_code == "NO_ACTIVE_CODE"  # type: ignore[union-attr]


def test_a_replaced_code_is_no_longer_accepted_but_the_new_one_is() -> None:
    state = given_codes(T0, at(minutes=1))
    assert submit(state, at(minutes=2), matches=True, otp=otp_id(1)).reason_code == "NO_ACTIVE_CODE"  # type: ignore[union-attr]
    assert isinstance(submit(state, at(minutes=2), matches=True, otp=otp_id(2)), OtpVerified)


def test_a_verified_code_submitted_again_is_refused_as_already_verified() -> None:
    state = given_codes(T0)
    state = evolve(state, submit(state, at(minutes=1), matches=True))
    assert state.codes[0].status is CodeStatus.VERIFIED
    assert submit(state, at(minutes=2), matches=True).reason_code == "ALREADY_VERIFIED"  # type: ignore[union-attr]
    assert submit(state, at(minutes=9), matches=True, otp=otp_id(1)).reason_code == "ALREADY_VERIFIED"  # type: ignore[union-attr]


def test_without_an_otp_id_the_latest_active_code_of_the_purpose_is_answered() -> None:
    state = given_codes(T0, purpose=CHANGE, destination="siti.baru@example.com")
    state = evolve(state, request(state, at(seconds=5), 2, purpose=CHANGE, channel=OtpChannel.SMS, destination="+6281298765432"))
    assert state.target(CHANGE).otp_id == otp_id(2)  # type: ignore[union-attr]
    state = evolve(state, submit(state, at(seconds=10), matches=True, purpose=CHANGE))
    assert state.target(CHANGE).otp_id == otp_id(1)  # type: ignore[union-attr]
    assert state.target(REG) is None


def test_a_contact_change_verifies_the_new_contact_for_its_session_and_leaves_the_other_code_usable() -> None:
    state = given_codes(T0, purpose=CHANGE, destination="siti.baru@example.com")
    state = evolve(state, request(state, at(seconds=5), 2, purpose=CHANGE, channel=OtpChannel.SMS, destination="+6281298765432"))
    sms = submit(state, at(seconds=10), matches=True, otp=otp_id(2), purpose=CHANGE)
    assert isinstance(sms, OtpVerified)
    assert (sms.destination, sms.profile_update_session_id) == ("+6281298765432", SESSION)
    email = submit(evolve(state, sms), at(seconds=20), matches=True, otp=otp_id(1), purpose=CHANGE)
    assert isinstance(email, OtpVerified) and email.destination == "siti.baru@example.com"


def test_events_of_other_concerns_leave_the_otp_state_unchanged() -> None:
    other = NikVerified(participant_id=PARTICIPANT, registration_stream_id="registration-" + "ab" * 16, attempts=1)
    assert evolve(given_codes(T0), other) == given_codes(T0)


# --- The whole round as the application layer will do it ---------------------------------------


def test_the_application_round_trip_with_real_keys_verifies_the_delivered_code_and_nothing_else() -> None:
    hmac_key, notification_key = secrets.token_bytes(32), secrets.token_bytes(32)
    # RequestOtp: draw, hash, ask the decider, and only then seal for notification.
    code, new_otp = crypto.generate_code(POLICY.code_length), otp_id(7)
    issued = issue(
        initial_state, POLICY, T0, participant_id=PARTICIPANT, otp_id=new_otp, code_hmac=crypto.code_hmac(hmac_key, PARTICIPANT, new_otp, code),
        key_id="otp-hmac-2026-11", channel=OtpChannel.EMAIL, destination=EMAIL, purpose=REG,
    )
    sealed, _ = sealing.seal_code(notification_key, "notif-otp-2026-11", new_otp, code)
    assert code not in issued.model_dump_json() and code not in sealed
    state = fold(issued)
    # Notification opens it; the participant types it; SubmitOtp compares the HMAC in constant time.
    typed = sealing.open_code(notification_key, new_otp, sealed)
    target = state.target(REG)
    assert target is not None
    wrong = f"{(int(typed) + 1) % 10**6:06d}"
    assert submit(state, at(minutes=1), matches=crypto.codes_match(hmac_key, PARTICIPANT, target.otp_id, wrong, target.code_hmac)).reason_code == "WRONG_CODE"  # type: ignore[union-attr]
    assert isinstance(submit(state, at(minutes=1), matches=crypto.codes_match(hmac_key, PARTICIPANT, target.otp_id, typed, target.code_hmac)), OtpVerified)
