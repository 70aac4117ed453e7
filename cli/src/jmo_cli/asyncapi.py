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
        *(s.broker for s in services),
        title="JMO backend",
        version="1.0.0",
        description="Commands the mobile gateway sends and events the services publish. Every message is a JSON envelope "
        "(see contracts/schemas/Envelope.json); the Kafka key is the stream id and the headers jmo-type, jmo-schema-version "
        "and jmo-correlation-id carry no personal data. What cannot be parsed goes to <topic>.dlq.",
    )
    doc: dict[str, Any] = spec.to_specification().to_jsonable()
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for channel in doc.get("channels", {}).values():
        address = channel["address"]
        for ref in channel.get("messages", {}).values():
            name = ref["$ref"].rsplit("/", 1)[1]
            message = doc["components"]["messages"][name]
            if message["payload"].get("$ref", "").endswith("/EmptyPayload"):
                union, defs = envelope_schemas(address)
                message["payload"] = union
                schemas.update(defs)
    schemas.pop("EmptyPayload", None)
    return doc


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
