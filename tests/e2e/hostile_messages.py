"""A hostile batch for the topics the outside world writes: what an attacker on the gateway's (or the
payment channel's) side of Kafka can send. Each message is new (fresh ids), and each is something no
consumer may act on: garbage, hostile structure, headers that cannot be read or lie, sizes past the
limits, every message type that does not belong on the topic (forged events, other services'
commands, scheduler commands), and the right types aimed at another service's streams or holding
out-of-bounds values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jmo_contracts.catalog as catalog
from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.export import example_envelope
from jmo_contracts.messages import MAX_NUMBER, MAX_TEXT, registered

#: The topics written from outside the system, and the stream kind each one's commands address.
OUTSIDE_TOPICS = {
    topics.commands("registration"): "registration",
    topics.commands("identity"): "identity",
    topics.commands("biometric"): "biometric",
    topics.commands("profile-update"): "profile-update",
    topics.PAYMENTS: "registration",
}
JSON = [("content-type", b"application/json")]


@dataclass(frozen=True)
class Hostile:
    """One message to send: its kind (for the report), bytes, key and headers."""

    kind: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes | None]]
    message_id: str | None = None  # set when it parses as an envelope (a refusal names it)


def _fresh(envelope: Envelope, stream_kind: str) -> Envelope:
    return envelope.model_copy(update={"message_id": new_id(), "correlation_id": new_id(), "stream_id": f"{stream_kind}-{new_id()}"})


def _raw(kind: str, value: bytes, headers: list[tuple[str, bytes | None]] | None = None) -> Hostile:
    return Hostile(kind, value, f"registration-{new_id()}".encode(), headers or [])


def _envelope(kind: str, envelope: Envelope, *, payload: dict[str, Any] | None = None, headers: list[tuple[str, bytes | None]] | None = None) -> Hostile:
    data = json.loads(envelope.to_json())
    if payload is not None:
        data["payload"] = payload
    return Hostile(kind, json.dumps(data).encode(), envelope.stream_id.encode(), headers if headers is not None else [(k, v.encode()) for k, v in envelope.kafka_headers().items()], envelope.message_id)


def _structural(topic: str, kind_of_stream: str) -> Iterator[Hostile]:
    accepted = sorted(catalog.accepted_on(topic))
    good = _fresh(example_envelope(registered()[accepted[0]]), kind_of_stream)
    yield _raw("garbage", b"hostile: not an envelope at all")
    yield _raw("empty", b"")
    yield _raw("not utf-8", b"\xff\xfe\xfd{")
    yield _raw("json array", b"[1, 2, 3]", JSON)
    yield _raw("json number", b"42", JSON)
    yield _raw("json null", b"null", JSON)
    yield _raw("deep arrays", b"[" * 20_000 + b"]" * 20_000, JSON)
    yield _raw("deep objects", b'{"a":' * 20_000 + b"1" + b"}" * 20_000, JSON)
    yield _raw("deep payload", good.to_json().replace(b'"payload":{', b'"payload":{"x":' + b"[" * 20_000 + b"]" * 20_000 + b",", 1), JSON)
    yield _raw("too large", b'{"x":"' + b"A" * 900_000 + b'"}', JSON)
    yield _raw("unknown type", good.to_json().replace(f'"type":"{good.type}"'.encode(), b'"type":"TransferJhtBalance"', 1))
    yield _raw("future schema version", good.to_json().replace(b'"schema_version":1', b'"schema_version":99', 1))
    yield _raw("occurred_at overflows in UTC", good.to_json().replace(good.occurred_at.isoformat().replace("+00:00", "Z").encode(), b"0001-01-01T00:00:00+14:00", 1))
    yield _raw("extra envelope field", good.to_json().replace(b'{"message_id"', b'{"admin":true,"message_id"', 1))
    yield _raw("stream id with personal data", good.to_json().replace(good.stream_id.encode(), b"registration-3201014508900001", 1))
    yield _envelope("header not utf-8", _fresh(good, kind_of_stream), headers=[("jmo-type", b"\xff\xfe")])
    yield _envelope("header null", _fresh(good, kind_of_stream), headers=[("jmo-type", None)])
    yield _envelope("header lies about the type", _fresh(good, kind_of_stream), headers=[("jmo-type", b"SelfieMatched")])


def _out_of_bounds(topic: str, kind_of_stream: str) -> Iterator[Hostile]:
    for type_name in sorted(catalog.accepted_on(topic)):
        cls = registered()[type_name]
        base = _fresh(example_envelope(cls), kind_of_stream)
        yield _envelope(f"{type_name} for another service's stream", _fresh(base, "biometric" if kind_of_stream != "biometric" else "registration"))
        payload = dict(base.payload)
        texts = [n for n, f in cls.model_fields.items() if isinstance(payload.get(n), str) and n not in ("participant_id", "session_id")]
        numbers = [n for n in cls.model_fields if isinstance(payload.get(n), int) and not isinstance(payload.get(n), bool)]
        if texts:
            yield _envelope(f"{type_name} with a megabyte-sized {texts[0]}", _fresh(base, kind_of_stream), payload=payload | {texts[0]: "X" * 700_000})
            yield _envelope(f"{type_name} with a {texts[0]} past its bound", _fresh(base, kind_of_stream), payload=payload | {texts[0]: "X" * (MAX_TEXT + 1)})
            yield _envelope(f"{type_name} with a bidi override in {texts[-1]}", _fresh(base, kind_of_stream), payload=payload | {texts[-1]: "SITI\u202eHANIMA"})
        if numbers:
            yield _envelope(f"{type_name} with {numbers[0]} past its bound", _fresh(base, kind_of_stream), payload=payload | {numbers[0]: MAX_NUMBER * 10})
        yield _envelope(f"{type_name} with an extra field", _fresh(base, kind_of_stream), payload=payload | {"is_admin": True})


def _not_on_this_topic(topic: str, kind_of_stream: str) -> Iterator[Hostile]:
    accepted = catalog.accepted_on(topic)
    for type_name, cls in registered().items():
        if type_name not in accepted:  # forged events, other services' commands, scheduler commands
            yield _envelope(f"{type_name} (does not belong here)", _fresh(example_envelope(cls), kind_of_stream))


def hostile_batch() -> dict[str, list[Hostile]]:
    """Every hostile message for every topic written from outside, by topic (base name)."""
    return {topic: [*_structural(topic, kind), *_out_of_bounds(topic, kind), *_not_on_this_topic(topic, kind)] for topic, kind in OUTSIDE_TOPICS.items()}
