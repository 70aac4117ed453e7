"""Cutting a stream at an instant, and reading an erased participant's events for the fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jmo_contracts import Envelope, new_id
from jmo_contracts.registration import ParticipantRegistered
from jmo_eventstore import ERASED, RecordedEvent
from jmo_cli.asof import cut, open_event, plain

pytestmark = pytest.mark.unit
T0 = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"


def event(version: int, commit: int, minutes: int, type_name: str = "RegistrationNikConfirmed", **payload: object) -> RecordedEvent:
    envelope = Envelope(
        type=type_name, schema_version=1, occurred_at=T0 + timedelta(minutes=minutes), correlation_id=new_id(), stream_id=f"registration-{PID}",
        payload={"participant_id": PID, "source_message_id": new_id()} | payload,
    )
    return RecordedEvent(envelope=envelope, stream_version=version, position=None, commit_id=f"registration-{PID}@{commit}")


def test_a_stream_is_cut_as_a_prefix_of_whole_commits_at_the_first_event_after_the_instant() -> None:
    stream = [event(1, 0, 0), event(2, 1, 10), event(3, 1, 20), event(4, 3, 5)]  # the last one's clock ran behind

    assert [e.stream_version for e in cut(stream, T0 + timedelta(minutes=15))] == [1]  # never half of a decision
    assert [e.stream_version for e in cut(stream, T0 + timedelta(minutes=20))] == [1, 2, 3, 4]
    assert [e.stream_version for e in cut(stream, T0 - timedelta(seconds=1))] == []


def test_an_erased_participants_event_still_folds_though_its_typed_fields_read_erased() -> None:
    erased = {"participant_id": PID, "category": "BPU", "otp_channel": "email", **dict.fromkeys(["nik", "full_name", "email", "phone", "birth_date", "gender"], ERASED)}
    recorded = event(1, 0, 0, "ParticipantRegistered")
    recorded = RecordedEvent(envelope=recorded.envelope.model_copy(update={"payload": erased}), stream_version=1, position=None, commit_id=recorded.commit_id)

    opened = open_event(recorded)

    assert isinstance(opened, ParticipantRegistered) and opened.birth_date == ERASED and opened.participant_id == PID
    assert plain(opened)["birth_date"] == ERASED and plain({"code_hmac": "x", "kept": {1, 2}}) == {"kept": [1, 2]}
