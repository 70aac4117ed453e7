"""Old messages stay readable: OtpIssued v1 (expiry as a duration) is read as v2 (absolute expiry)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jmo_contracts import Envelope, parse_payload
from jmo_contracts.export import CONTRACTS_DIR
from jmo_contracts.identity import OtpIssued, OtpIssuedV1
from jmo_contracts.messages import UnknownMessageType, upcast

pytestmark = pytest.mark.unit

V1_FIXTURE = Path(__file__).parent / "fixtures" / "OtpIssued.v1.json"


def test_an_otp_issued_v1_message_stored_earlier_is_read_as_the_v2_model():
    envelope = Envelope.from_json(V1_FIXTURE.read_bytes())
    assert (envelope.type, envelope.schema_version) == ("OtpIssued", 1)

    opened = envelope.open()

    assert isinstance(opened, OtpIssued)
    assert opened.VERSION == 2
    assert opened.expires_at == datetime(2026, 5, 4, 2, 20, tzinfo=UTC)
    assert opened.issued_at == datetime(2026, 5, 4, 2, 15, tzinfo=UTC)
    assert opened.otp_id == "0f1e2d3c4b5a46978877665544332211"


def test_the_v1_fixture_is_valid_against_the_frozen_v1_model():
    payload = json.loads(V1_FIXTURE.read_text())["payload"]
    assert OtpIssuedV1.model_validate(payload).expires_in_seconds == 300


def test_the_upcaster_is_pure_and_leaves_its_input_untouched():
    payload = json.loads(V1_FIXTURE.read_text())["payload"]
    before = json.loads(json.dumps(payload))
    first = upcast("OtpIssued", 1, payload)
    second = upcast("OtpIssued", 1, payload)
    assert payload == before
    assert first == second
    assert "expires_in_seconds" not in first
    assert first["expires_at"] == "2026-05-04T02:20:00Z"


def test_a_v2_payload_needs_no_upcasting():
    payload = json.loads(V1_FIXTURE.read_text())["payload"]
    v2 = upcast("OtpIssued", 1, payload)
    assert parse_payload("OtpIssued", 2, v2) == parse_payload("OtpIssued", 1, payload)


def test_a_version_newer_than_the_code_is_refused():
    with pytest.raises(UnknownMessageType):
        parse_payload("OtpIssued", 3, {})


def test_the_schema_of_each_version_stays_published():
    v1 = json.loads((CONTRACTS_DIR / "schemas" / "OtpIssued.v1.json").read_text())
    v2 = json.loads((CONTRACTS_DIR / "schemas" / "OtpIssued.v2.json").read_text())
    assert "expires_in_seconds" in v1["properties"] and "expires_at" not in v1["properties"]
    assert "expires_at" in v2["properties"] and "expires_in_seconds" not in v2["properties"]
    assert (v1["x-jmo-version"], v2["x-jmo-version"]) == (1, 2)
