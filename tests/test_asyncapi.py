"""The committed AsyncAPI document is what the services' faststream apps generate."""

from __future__ import annotations

import json

import pytest

from jmo_cli.asyncapi import DOCUMENT, generate, render

pytestmark = pytest.mark.unit


def test_the_committed_asyncapi_document_matches_the_code() -> None:
    assert DOCUMENT.read_text() == render(), "run `.venv/bin/jmo contracts asyncapi` and commit the result"


def _documented_on(doc: dict, address: str) -> set[str]:
    [channel] = [c for c in doc["channels"].values() if c["address"] == address]
    [ref] = channel["messages"].values()
    payload = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]["payload"]
    if "anyOf" in payload:
        return {r["$ref"].rsplit("/", 1)[1] for r in payload["anyOf"]}
    return {payload["title"]}


def test_the_gateway_sees_the_registration_command_schemas_on_the_commands_channel() -> None:
    doc = generate()
    assert _documented_on(doc, "jmo.registration.commands") == {"RegisterParticipantEnvelope", "ProvideEmploymentDetailsEnvelope"}
    # a payment is confirmed by the payment channel on its own topic, never by the gateway
    assert _documented_on(doc, "jmo.registration.payments") == {"RecordContributionPaymentEnvelope"}
    schema = doc["components"]["schemas"]["RegisterParticipantEnvelope"]
    assert schema["properties"]["type"]["const"] == "RegisterParticipant"


def test_every_events_channel_documents_command_rejected() -> None:
    doc = generate()
    text = json.dumps(doc)
    published = {c["address"] for name, c in doc["channels"].items() if name.endswith(":publish") and c["address"].endswith(".events")}
    assert published == {f"jmo.{s}.events" for s in ("registration", "identity", "biometric", "profile-update", "notification")}
    assert "CommandRejectedEnvelope" in text
