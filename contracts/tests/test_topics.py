"""Topic names and their settings, in one place."""

from __future__ import annotations

import pytest

from jmo_contracts import topics

pytestmark = pytest.mark.unit


def test_every_consumed_topic_has_one_dlq_and_codes_never_linger() -> None:
    specs = {s.name: s for s in topics.all_topics("p.")}
    consumed = {t for ts in topics.CONSUMES.values() for t in ts}
    assert {n for n in specs if n.endswith(".dlq")} == {"p." + topics.dlq(t) for t in consumed}
    assert specs["p." + topics.OTP_DELIVERY].retention_ms == topics.ONE_HOUR_MS
    assert specs["p." + topics.dlq(topics.OTP_DELIVERY)].retention_ms == topics.ONE_DAY_MS  # destination in clear: not kept
    assert all(s.retention_ms is None for n, s in specs.items() if n.endswith(".dlq") and topics.OTP_DELIVERY not in n)


def test_the_audit_logs_facts_travel_on_no_topic():
    from jmo_contracts.catalog import accepted_on

    for spec in topics.all_topics():
        assert not {"ParticipantErased", "ParticipantDataAccessed"} & accepted_on(spec.name), spec.name
