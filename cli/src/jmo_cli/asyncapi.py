"""The AsyncAPI document of the five services, generated from their faststream applications.

Channels, operations and bindings come from each service's broker as it is wired; the payload
of every message is the typed envelope of the contracts that travel on that topic (faststream
cannot see those for subscribers, which read raw bytes so that they can park bad input in a DLQ).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI

from jmo_contracts.catalog import envelope_schemas
from jmo_runtime import ServiceSettings

DOCUMENT = Path("contracts/asyncapi/jmo.asyncapi.json")


def build_services() -> list[Any]:
    from jmo_biometric.entrypoint.app import build as biometric
    from jmo_identity.entrypoint.app import build as identity
    from jmo_notification.entrypoint.app import build as notification
    from jmo_profile_update.entrypoint.app import build as profile_update
    from jmo_registration.entrypoint.app import build as registration

    from jmo_biometric.settings import BiometricSettings
    from jmo_identity.settings import IdentitySettings
    from jmo_notification.settings import NotificationSettings
    from jmo_profile_update.settings import ProfileUpdateSettings
    from jmo_registration.settings import RegistrationSettings

    common = {"topic_prefix": "", "database_prefix": "", "kafka_bootstrap_servers": "127.0.0.1:9092"}
    settings = ServiceSettings(**common)
    throwaway = base64.b64encode(os.urandom(32)).decode()  # keys shape nothing in the document
    identity_settings = IdentitySettings(**common, otp_hmac_key=throwaway, otp_delivery_key=throwaway)
    registration_settings = RegistrationSettings(**common, nik_index_key=throwaway)
    notification_settings = NotificationSettings(**common, otp_delivery_key=throwaway, notification_data_key=throwaway)
    return [registration(registration_settings), identity(identity_settings), biometric(BiometricSettings(**common)), profile_update(ProfileUpdateSettings(**common)), notification(notification_settings)]


def generate() -> dict[str, Any]:
    """The document as a JSON-able dict (building services connects to nothing)."""
    services = build_services()
    spec = AsyncAPI(
        *(s.documentation for s in services),
        title="JMO backend",
        version="1.0.0",
        description="Commands the mobile gateway sends and events the services publish. Every message is a JSON envelope "
        "(see contracts/schemas/Envelope.json); the Kafka key is the stream id and the headers jmo-type, jmo-schema-version "
        "and jmo-correlation-id carry no personal data. Personal fields (x-jmo-personal-fields; each marked x-jmo-sealed) travel sealed "
        "under the participant's key (SealedValue). What cannot be parsed goes to <topic>.dlq.",
    )
    doc: dict[str, Any] = spec.to_specification().to_jsonable()
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for channel in doc.get("channels", {}).values():
        address = channel["address"]
        for ref in channel.get("messages", {}).values():
            name = ref["$ref"].rsplit("/", 1)[1]
            message = doc["components"]["messages"][name]
            placeholder = message["payload"].get("$ref", "").rsplit("/", 1)[-1]
            if placeholder == "EmptyPayload" or (name.endswith(":SubscribeMessage") and placeholder.endswith(":Message:Payload")):
                # our subscribers take the raw message (no body parameter to derive a schema from):
                # what they accept is the topic's envelopes
                union, defs = envelope_schemas(address)
                message["payload"] = union
                schemas.update(defs)
                schemas.pop(placeholder, None)
    schemas.pop("EmptyPayload", None)
    mark_sealed_fields(schemas)
    return doc


SEALED_VALUE = {
    "type": "object",
    "title": "SealedValue",
    "description": "A personal field as it travels on Kafka (and is stored): the field's JSON value encrypted with AES-256-GCM under the "
    "participant's data key from the shared key ring, associated data `<stream_id>|<type>|<field>`. `_enc` is base64 of the 12-byte nonce "
    "followed by the ciphertext and tag. Consumers with the key open it before validating the payload; once the participant is erased it "
    "never opens again (refused as PARTICIPANT_ERASED). A personal field in clear is refused (PERSONAL_DATA_IN_CLEAR).",
    "properties": {"_enc": {"type": "string", "contentEncoding": "base64"}},
    "required": ["_enc"],
    "additionalProperties": False,
}


def mark_sealed_fields(schemas: dict[str, Any]) -> None:
    """Say, on every payload schema, which fields travel sealed (``x-jmo-sealed``, the ``SealedValue``
    form) and list them (``x-jmo-personal-fields``): the schema of such a field is its value once opened."""
    from jmo_contracts.messages import registered

    by_name = {cls.__name__: cls for cls in registered().values()}
    for name, schema in schemas.items():
        cls = by_name.get(name)
        if cls is None or not cls.PERSONAL_FIELDS:
            continue
        schema["x-jmo-personal-fields"] = sorted(cls.PERSONAL_FIELDS)
        for field in cls.PERSONAL_FIELDS:
            prop = schema.get("properties", {}).get(field)
            if prop is not None:
                prop["x-jmo-sealed"] = {"$ref": "#/components/schemas/SealedValue"}
                prop["description"] = (prop.get("description", "") + " Personal: on Kafka sealed as a SealedValue; this schema is its value once opened.").strip()
    schemas["SealedValue"] = SEALED_VALUE


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
