"""The participant-profile fold: what each event sets, and that folding twice changes nothing."""

from __future__ import annotations

import pytest

from jmo_contracts import Envelope, new_id
from jmo_contracts.common import CommandRejected
from jmo_contracts.profile_update import ProfileUpdated, ProfileValues
from jmo_contracts.registration import RegistrationRejected, RegistrationRejectionReason
from jmo_profile_update.domain import profile as profiles

pytestmark = pytest.mark.unit

PID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"


def wrap(message: object) -> Envelope:
    return Envelope.wrap(message, stream_id=f"registration-{PID}", correlation_id=new_id())  # type: ignore[arg-type]


def test_a_rejected_registration_leaves_a_rejected_profile_and_refolding_is_a_no_op() -> None:
    rejected = wrap(RegistrationRejected(participant_id=PID, reason_code=RegistrationRejectionReason.NIK_MISMATCH, reason="tidak sesuai"))
    doc = profiles.apply(None, rejected)
    assert doc is not None and (doc["_id"], doc["status"], doc["applied"]) == (PID, "REJECTED", [rejected.message_id])
    assert profiles.apply(doc, rejected) == doc


def test_profile_updated_sets_exactly_the_changed_fields_and_counts_versions() -> None:
    start = {"_id": PID, "participant_id": PID, "status": "ACTIVE", "email": "old@example.com", "npwp": "111111111111111", "profile_version": 0}
    updated = wrap(ProfileUpdated(
        participant_id=PID, session_id="c" * 32, changed_fields=["email", "npwp"], new_values=ProfileValues(email="new@example.com"),
        contact_email="new@example.com", contact_phone="+6281234567890", notification_channel="email",
    ))
    doc = profiles.apply(start, updated)
    assert doc is not None
    assert (doc["email"], doc["npwp"], doc["profile_version"], doc["last_changed_fields"]) == ("new@example.com", None, 1, ["email", "npwp"])
    assert start["email"] == "old@example.com"  # the argument is not changed


def test_events_the_profile_does_not_fold_are_not_about_a_participant() -> None:
    other = wrap(CommandRejected(service="registration", command_type="X", command_id="a" * 32, reason_code="Y", reason="z"))
    assert profiles.participant_of(other) is None and profiles.apply(None, other) is None
