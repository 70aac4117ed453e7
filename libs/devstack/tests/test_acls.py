"""The ACLs are derived from the contracts' declarations: one writer per topic, reads as consumed."""

from __future__ import annotations

from collections import defaultdict

import pytest

from jmo_contracts import topics as t
from jmo_devstack.acls import ADMIN, GATEWAY, OPS, PAYMENT_CHANNEL, Acl, derive_acls, principals

pytestmark = pytest.mark.unit

PREFIX = "t1234abcd."


def grants(acls: list[Acl], resource: str = "topic") -> dict[tuple[str, str], set[str]]:
    """(principal, operation) -> names."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for acl in acls:
        if acl.resource == resource:
            out[acl.principal, acl.operation].add(acl.name)
    return out


@pytest.fixture(scope="module")
def acls() -> list[Acl]:
    return derive_acls(PREFIX)


def names(*base: str) -> set[str]:
    return {PREFIX + b for b in base}


def test_every_topic_name_carries_the_prefix_and_is_a_topic_of_the_system(acls):
    system = {s.name for s in t.all_topics(PREFIX)}
    assert {a.name for a in acls if a.resource == "topic"} == system


def test_every_topic_has_exactly_one_writer_the_declared_producer_or_for_a_dlq_its_consumers(acls):
    writers: dict[str, set[str]] = defaultdict(set)
    for acl in acls:
        if acl.resource == "topic" and acl.operation == "WRITE":
            writers[acl.name.removeprefix(PREFIX)].add(acl.principal)
    for spec in t.all_topics():
        if spec.name.endswith(t.DLQ_SUFFIX):
            origin = spec.name.removesuffix(t.DLQ_SUFFIX)
            assert writers[spec.name] == {s for s, consumed in t.CONSUMES.items() if origin in consumed}, spec.name
        else:
            assert writers[spec.name] == {t.producer_of(spec.name)}, spec.name


def test_the_gateway_writes_the_commands_topics_only_and_reads_the_events_topics(acls):
    g = grants(acls)
    assert g[GATEWAY, "WRITE"] == names(*(t.commands(s) for s in t.SERVICES))
    assert g[GATEWAY, "READ"] == names(*(t.events(s) for s in t.SERVICES))
    assert not g[GATEWAY, "WRITE"] & names(t.PAYMENTS, t.OTP_DELIVERY, *(t.events(s) for s in t.SERVICES))


def test_the_payment_channel_writes_the_payments_topic_and_nothing_else(acls):
    g = grants(acls)
    assert g[PAYMENT_CHANNEL, "WRITE"] == names(t.PAYMENTS)
    assert not g[PAYMENT_CHANNEL, "READ"]


def test_each_service_writes_its_own_events_and_its_dlqs_and_reads_what_it_consumes_in_its_group(acls):
    g, groups = grants(acls), grants(acls, "group")
    for service in t.SERVICES:
        own = {t.events(service)} | ({t.OTP_DELIVERY} if service == "identity" else set())
        assert g[service, "WRITE"] == names(*own, *(t.dlq(c) for c in t.CONSUMES[service])), service
        assert g[service, "READ"] == names(*t.CONSUMES[service]), service
        assert groups[service, "READ"] == {f"jmo-{service}"}, service
        others = {t.events(o) for o in t.SERVICES if o != service}
        assert not g[service, "WRITE"] & names(*others, t.PAYMENTS, *(t.commands(s) for s in t.SERVICES)), service


def test_ops_reads_every_topic_and_writes_none(acls):
    g = grants(acls)
    assert g[OPS, "READ"] == {s.name for s in t.all_topics(PREFIX)}
    assert not g[OPS, "WRITE"]


def test_whoever_writes_or_reads_a_topic_may_also_describe_it(acls):
    g = grants(acls)
    for (principal, op), topics in list(g.items()):
        if op in ("READ", "WRITE"):
            assert topics <= g[principal, "DESCRIBE"], principal


def test_only_the_known_principals_appear_and_the_admin_needs_no_acl(acls):
    assert {a.principal for a in acls} == set(principals())
    assert ADMIN not in principals()


def test_without_a_prefix_the_names_are_the_contracts_own():
    assert {a.name for a in derive_acls() if a.resource == "topic"} == {s.name for s in t.all_topics()}


def test_a_service_never_inherits_the_kafka_passwords_of_the_shell_only_gets_its_own():
    from jmo_devstack.secrets import kafka_identity
    from jmo_devstack.services import service_env

    shell = {"PATH": "/bin", "JMO_KAFKA_PASSWORD_GATEWAY": "g", "JMO_KAFKA_PASSWORD_OPS": "o", "JMO_KAFKA_USERNAME": "ops", "JMO_KAFKA_PASSWORD": "o"}
    env = service_env("b:1", "mongodb://x/", "", kafka_identity("registration", "r"), base=shell)
    assert {k: v for k, v in env.items() if k.startswith("JMO_KAFKA_")} == {
        "JMO_KAFKA_USERNAME": "registration", "JMO_KAFKA_PASSWORD": "r", "JMO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    }
    assert env["PATH"] == "/bin"
