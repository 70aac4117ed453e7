"""RequestOtp for a contact changed during pengkinian data: the new contact, normalised, for its session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jmo_contracts.identity import NikDeferralReason, NikVerified, OtpPurpose, RequestOtp
from jmo_identity.domain.identity import CodeRequest, NewCode, NikAnswer, NikUnanswered, identity
from jmo_identity.domain.otp import OtpPolicy
from jmo_runtime import Context, InvariantBroken, Rejection

pytestmark = pytest.mark.unit

PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
SESSION = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CODE = NewCode(otp_id="b" * 32, code_hmac="c" * 64, key_id="k1")


def request(destination_allowed: bool = True, contact_change_allowed: bool = True, **changes: Any) -> list[Any]:
    state = identity.fold([NikVerified(participant_id=PID, registration_stream_id=f"registration-{PID}", attempts=1)])
    command = RequestOtp.model_validate({"participant_id": PID, "channel": "sms", "purpose": "CONTACT_CHANGE", "new_contact": "0813-8880-0022", "profile_update_session_id": SESSION} | changes)
    facts = CodeRequest(policy=OtpPolicy(), contact_change_allowed=contact_change_allowed, destination_allowed=destination_allowed, code=CODE)
    return list(identity.decide(command, state, Context(now=NOW, stream_id=f"identity-{PID}", facts=facts, message_id="a" * 32)))


def test_the_code_goes_to_the_new_contact_in_e164_and_names_the_session() -> None:
    [issued] = request()
    assert (issued.purpose, issued.destination, issued.profile_update_session_id) == (OtpPurpose.CONTACT_CHANGE, "+6281388800022", SESSION)


def test_a_contact_change_code_is_refused_unless_a_live_session_of_the_participant_submitted_that_contact() -> None:
    with pytest.raises(Rejection) as refused:
        request(contact_change_allowed=False)
    assert refused.value.reason_code == "NO_LIVE_SESSION"


def test_a_destination_asked_for_too_often_gets_no_code_whichever_participant_asks() -> None:
    [refused] = request(destination_allowed=False)
    assert (refused.TYPE, refused.reason_code) == ("OtpRejected", "HOURLY_LIMIT")


def test_the_destination_a_request_would_send_to_is_the_normalised_new_contact() -> None:
    from jmo_identity.domain.identity import otp_destination

    command = RequestOtp.model_validate({"participant_id": PID, "channel": "sms", "purpose": "CONTACT_CHANGE", "new_contact": "0813-8880-0022", "profile_update_session_id": SESSION})
    assert otp_destination(command, identity.initial_state) == "+6281388800022"
    assert otp_destination(command.model_copy(update={"new_contact": "021"}), identity.initial_state) is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [({"new_contact": None}, "CONTACT_REQUIRED"), ({"profile_update_session_id": None}, "SESSION_REQUIRED"), ({"new_contact": "0212345678"}, "INVALID_PHONE"),
     ({"channel": "email", "new_contact": "not-an-email"}, "INVALID_EMAIL")],
)
def test_a_contact_change_without_a_valid_contact_or_session_is_refused(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(Rejection) as refused:
        request(**changes)
    assert refused.value.reason_code == code


def test_an_unreachable_dukcapil_defers_the_check_once_and_the_later_answer_still_counts() -> None:
    from jmo_contracts.registration import ParticipantRegistered
    from jmo_identity.domain.identity import NikStatus

    registered = ParticipantRegistered(
        participant_id=PID, category="BPU", nik="3201014508900001", full_name="SITI AMINAH", email="siti@example.com",
        phone="+6281234567890", otp_channel="email", birth_date="1990-08-05", gender="F",
    )
    context = Context(now=NOW, stream_id=f"identity-{PID}", facts=NikUnanswered(reason=NikDeferralReason.CIRCUIT_OPEN, retry_in=timedelta(seconds=2)))
    [deferred] = identity.decide(registered, identity.initial_state, context)
    assert (deferred.TYPE, deferred.reason_code, deferred.attempt) == ("NikVerificationDeferred", "CIRCUIT_OPEN", 1)
    state = identity.fold([deferred])
    assert state.nik is NikStatus.UNKNOWN and state.deferrals == 1
    answered = Context(now=NOW, stream_id=f"identity-{PID}", facts=NikAnswer(answer="SESUAI", policy=OtpPolicy(), code=CODE))
    verified, issued = identity.decide(registered, state, answered)
    assert (verified.TYPE, issued.TYPE) == ("NikVerified", "OtpIssued")


def test_a_code_request_given_no_facts_decides_nothing_rather_than_assuming_them() -> None:
    state = identity.fold([NikVerified(participant_id=PID, registration_stream_id=f"registration-{PID}", attempts=1)])
    command = RequestOtp.model_validate({"participant_id": PID, "channel": "sms", "purpose": "CONTACT_CHANGE", "new_contact": "0813-8880-0022", "profile_update_session_id": SESSION})
    with pytest.raises(InvariantBroken, match="CodeRequest"):
        identity.decide(command, state, Context(now=NOW, stream_id=f"identity-{PID}", message_id="a" * 32))
