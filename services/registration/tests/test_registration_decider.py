"""The registration decider, given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jmo_contracts.registration import ParticipantRegistered, RegisterParticipant
from jmo_registration.domain.registration import Registration, Status, registration
from jmo_runtime import Context, Rejection

pytestmark = pytest.mark.unit
CONTEXT = Context(now=datetime(2026, 11, 21, tzinfo=UTC), stream_id="registration-" + "ab" * 16)


def a_command(**changes: object) -> RegisterParticipant:
    data = {"category": "BPU", "nik": "3201014508900001", "full_name": " siti  aminah ", "email": "Siti@Example.com", "phone": "081234567890", "otp_channel": "email"} | changes
    return RegisterParticipant.model_validate(data)


def test_a_valid_registration_records_the_normalised_participant() -> None:
    [event] = registration.decide(a_command(), registration.initial_state, CONTEXT)
    assert isinstance(event, ParticipantRegistered)
    assert (event.full_name, event.email, event.phone, event.gender, str(event.birth_date)) == ("SITI AMINAH", "siti@example.com", "+6281234567890", "F", "1990-08-05")
    assert event.participant_id == "ab" * 16


def test_the_participant_is_registered_after_the_event() -> None:
    events = registration.decide(a_command(), registration.initial_state, CONTEXT)
    assert registration.fold(events) == Registration(status=Status.REGISTERED, participant_id="ab" * 16)


def test_a_second_registration_on_the_same_stream_is_refused() -> None:
    state = registration.fold(registration.decide(a_command(), registration.initial_state, CONTEXT))
    with pytest.raises(Rejection) as info:
        registration.decide(a_command(), state, CONTEXT)
    assert info.value.reason_code == "REGISTRATION_ALREADY_STARTED"


@pytest.mark.parametrize(("field", "value", "code"), [("nik", "123", "INVALID_NIK"), ("full_name", "R2D2", "INVALID_NAME"), ("email", "nope", "INVALID_EMAIL"), ("phone", "021555", "INVALID_PHONE")])
def test_invalid_input_is_refused_with_its_reason_and_nothing_is_recorded(field: str, value: str, code: str) -> None:
    with pytest.raises(Rejection) as info:
        registration.decide(a_command(**{field: value}), registration.initial_state, CONTEXT)
    assert info.value.reason_code == code
