"""Property-based: whatever arrives on any consumed topic, admission never raises, and what it lets
through is exactly what the topic's contract accepts (SPEC §10–§11, issue 12).

Hostile input is generated three ways: arbitrary bytes; arbitrary JSON; and real envelopes of every
message type (from the contracts' examples) mutated — another topic's type, another stream kind,
payload fields replaced by hostile values, envelope fields replaced, deep nesting, headers.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jmo_contracts import Envelope, topics
from jmo_contracts.catalog import accepted_on, stream_kind_of
from jmo_contracts.export import example_envelope
from jmo_contracts.messages import registered
from jmo_runtime.messaging import Boundary, Refused, admit

pytestmark = pytest.mark.unit

CONSUMED = sorted({t for ts in topics.CONSUMES.values() for t in ts})
TYPES = sorted(registered())
BOUNDARIES = {t: Boundary(accepted_on(t), stream_kind_of(t)) for t in CONSUMED}
REASON = r"^[A-Z][A-Z0-9_]*$"

hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(["\u202e", "\u2066", "\x00", "\n", "٣", "３", "A", "0", "'", "\\", '"']), max_size=20),
    st.sampled_from(["X" * 300, "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "NaN", "", " " * 5, "registration-" + "0" * 32]),
)
hostile_value: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20), st.floats(allow_nan=True), hostile_text),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=20,
)


def _check(topic: str, raw: bytes, headers: dict[str, str]) -> None:
    boundary = BOUNDARIES[topic]
    result = admit(raw, headers, boundary=boundary)
    if isinstance(result, Refused):
        assert re.match(REASON, result.reason), result
        return
    # let through: a valid envelope of a type this topic accepts, for a stream this service owns
    assert isinstance(result, Envelope)
    assert result.type in accepted_on(topic)
    assert stream_kind_of(topic) is None or result.stream_id.rsplit("-", 1)[0] == stream_kind_of(topic)
    result.open()  # its payload validates (upcast if older)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(CONSUMED), raw=st.binary(max_size=2_000))
def test_arbitrary_bytes_are_refused_with_a_reason_or_are_a_valid_envelope(topic: str, raw: bytes) -> None:
    _check(topic, raw, {})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(CONSUMED), value=hostile_value)
def test_arbitrary_json_is_refused_with_a_reason(topic: str, value: Any) -> None:
    _check(topic, json.dumps(value).encode(), {})


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    topic = draw(st.sampled_from(CONSUMED))
    envelope = json.loads(example_envelope(registered()[draw(st.sampled_from(TYPES))]).to_json())
    kind = draw(st.sampled_from(["registration", "identity", "biometric", "profile-update", "notification", "refusal", "x"]))
    envelope["stream_id"] = f"{kind}-{'a' * 32}"
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.sampled_from(["payload", "envelope"]))
        target = envelope["payload"] if where == "payload" and isinstance(envelope.get("payload"), dict) else envelope
        keys = sorted(target) + ["extra"]
        target[draw(st.sampled_from(keys))] = draw(hostile_value)
    raw = json.dumps(envelope).encode()
    if draw(st.booleans()):
        depth = draw(st.integers(min_value=100, max_value=5_000))
        raw = raw.replace(b'"payload": {', b'"payload": {"n": ' + b"[" * depth + b"]" * depth + b", ", 1)
    headers = draw(st.sampled_from([{}, {"jmo-type": str(envelope.get("type"))}, {"jmo-type": "SelfieMatched"}, {"jmo-unreadable-headers": "1"}]))
    return topic, raw, headers


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_envelopes())
def test_mutated_envelopes_of_every_type_are_admitted_only_where_the_contract_accepts_them(case: tuple[str, bytes, dict[str, str]]) -> None:
    _check(*case)


@pytest.mark.parametrize("topic", CONSUMED)
def test_the_example_of_each_accepted_type_is_admitted_on_its_topic_and_refused_on_every_other(topic: str) -> None:
    for type_name in TYPES:
        envelope = example_envelope(registered()[type_name])
        kind = stream_kind_of(topic)
        if kind is not None:
            envelope = envelope.model_copy(update={"stream_id": f"{kind}-{'a' * 32}"})
        result = admit(envelope.to_json(), {"jmo-type": type_name}, boundary=BOUNDARIES[topic])
        assert isinstance(result, Envelope) == (type_name in accepted_on(topic)), (topic, type_name, result)
