"""Every field of every contract is bounded (SPEC §11): no message can grow past what Kafka accepts."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import jmo_contracts.catalog  # noqa: F401 (registers every message type)
from jmo_contracts import Envelope
from jmo_contracts.messages import MAX_ITEMS, MAX_NUMBER, MAX_TEXT, registered
from jmo_contracts.profile_update import SubmitPopulationData
from jmo_contracts.registration import RecordContributionPayment, RegisterParticipant

pytestmark = pytest.mark.unit


def _unbounded(schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    if "$ref" in schema:
        return _unbounded(defs[schema["$ref"].rsplit("/", 1)[1]], defs, path)
    found = [p for key in ("anyOf", "oneOf", "allOf") for sub in schema.get(key, []) for p in _unbounded(sub, defs, path)]
    kind = schema.get("type")
    if kind == "string" and not {"maxLength", "pattern", "enum", "const"} & schema.keys() and schema.get("format") not in ("date", "date-time"):
        found.append(path)
    if kind in ("integer", "number") and not {"maximum", "exclusiveMaximum"} & schema.keys():
        found.append(path)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(path + "[]")
        found += _unbounded(schema.get("items", {}), defs, path + "[]")
    if kind == "object":
        for name, sub in schema.get("properties", {}).items():
            found += _unbounded(sub, defs, f"{path}.{name}")
    return found


def test_every_text_list_and_number_of_every_contract_has_a_documented_bound() -> None:
    unbounded = []
    for name, cls in registered().items():
        schema = cls.model_json_schema()
        unbounded += _unbounded(schema, schema.get("$defs", {}), name)
    assert unbounded == []


def _registration(**changes: Any) -> dict[str, Any]:
    return {"category": "BPU", "nik": "3201014508900001", "full_name": "Siti Aminah", "email": "siti@example.com", "phone": "081234567890", "otp_channel": "email", **changes}


def test_a_text_longer_than_its_bound_is_refused() -> None:
    RegisterParticipant.model_validate(_registration(full_name="A" * MAX_TEXT))
    with pytest.raises(ValidationError):
        RegisterParticipant.model_validate(_registration(full_name="A" * (MAX_TEXT + 1)))


def test_a_payment_provider_of_a_megabyte_is_refused() -> None:
    payment = {"payment_reference": "JMO-BPU-0123456789", "amount": 16_800, "paid_at": "2026-11-21T09:05:12Z", "channel": "QRIS", "provider": "BRI", "provider_transaction_id": "Q-1"}
    RecordContributionPayment.model_validate(payment)
    with pytest.raises(ValidationError):
        RecordContributionPayment.model_validate({**payment, "provider": "X" * 1_000_000})
    with pytest.raises(ValidationError):
        RecordContributionPayment.model_validate({**payment, "amount": MAX_NUMBER + 1})
    with pytest.raises(ValidationError):
        RecordContributionPayment.model_validate({**payment, "paid_at": "0001-01-01T00:00:00+14:00"})


@pytest.mark.parametrize("bad", ["SITI\u202eHANIMA", "SITI\u2066A", "SITI\x00A", "SITI\nAMINAH", "SITI\x85A"])
def test_free_text_with_control_or_bidi_override_characters_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="control or bidirectional"):
        RegisterParticipant.model_validate(_registration(full_name=bad))


def test_nested_parts_are_bounded_too() -> None:
    schema = SubmitPopulationData.model_json_schema()
    [address] = [d for d in schema["$defs"].values() if "street" in d.get("properties", {})]
    assert address["properties"]["street"]["maxLength"] == MAX_TEXT


def test_lists_have_at_most_the_default_number_of_items() -> None:
    from jmo_contracts.registration import ContributionAssessed

    schema = ContributionAssessed.model_json_schema()
    assert schema["properties"]["programs"]["maxItems"] == MAX_ITEMS


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1800-01-01T00:00:00Z"])
def test_an_envelope_from_another_era_is_a_validation_error_not_an_overflow(instant: str) -> None:
    raw = {"message_id": "a" * 32, "type": "RegisterParticipant", "schema_version": 1, "occurred_at": instant, "correlation_id": "b" * 32, "stream_id": "registration-" + "c" * 32, "payload": {}}
    with pytest.raises(ValidationError):
        Envelope.model_validate(raw)
