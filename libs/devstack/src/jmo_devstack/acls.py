"""Kafka principals and their ACLs, derived from the declarations in ``jmo_contracts.topics``.

Nothing here is a hand-written list of topics: who writes a topic comes from
``topics.producer_of``, who reads it from ``topics.CONSUMES``, and a DLQ is written by the consumer of
the topic it belongs to. The broker runs KRaft's ``StandardAuthorizer`` with no ACL meaning no access,
so a principal can do exactly what :func:`derive_acls` grants, nothing else:

- each service: write (and describe) its own events topic (identity also the OTP delivery topic);
  read every topic it consumes, in its consumer group ``jmo-<service>``; write the DLQ of each.
- ``gateway``: write the five commands topics; read the events topics (it follows journeys by
  correlation id, without a consumer group). It cannot write an events topic or the payments topic.
- ``payment-channel``: write the payments topic, nothing else.
- ``ops``: read (and describe) every topic, DLQs included, and describe the ``jmo-`` consumer
  groups; write nothing. ``jmo dlq replay`` re-publishes a parked message to the topic it came from
  with the credentials of that topic's producer (``producer_of``): a replay is the original producer's
  message once more, and every topic keeps exactly one writer.
- the admin (:data:`ADMIN`) is a super user, used only by the devstack to create topics and ACLs and
  as the broker's own identity; no service or tool runs as it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

GATEWAY = "gateway"
PAYMENT_CHANNEL = "payment-channel"
OPS = "ops"
ADMIN = "jmo-admin"

#: Kafka's wire codes (org.apache.kafka.common.acl / resource).
RESOURCE_TYPES = {"topic": 2, "group": 3}
OPERATIONS = {"READ": 3, "WRITE": 4, "DESCRIBE": 8}
PATTERNS = {"LITERAL": 3, "PREFIXED": 4}
ANY = 1
ALLOW = 3


def principals() -> tuple[str, ...]:
    """Every principal a client of the system runs as (the admin excluded)."""
    from jmo_contracts.topics import SERVICES

    return (*SERVICES, GATEWAY, PAYMENT_CHANNEL, OPS)


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule: ``principal`` may do ``operation`` on the ``resource`` named ``name``."""

    principal: str
    resource: str
    name: str
    operation: str
    pattern: str = "LITERAL"

    @property
    def kafka_principal(self) -> str:
        return f"User:{self.principal}"


def derive_acls(prefix: str = "") -> list[Acl]:
    """Every ACL of the system for topics named with ``prefix`` (``JMO_TOPIC_PREFIX``), sorted."""
    from jmo_contracts import topics as t

    acls: set[Acl] = set()

    def on_topic(principal: str, name: str, *operations: str) -> None:
        acls.update(Acl(principal, "topic", prefix + name, op) for op in operations)

    names = [spec.name for spec in t.all_topics()]
    for name in names:
        if not name.endswith(t.DLQ_SUFFIX):
            on_topic(t.producer_of(name), name, "WRITE", "DESCRIBE")
    for service, consumed in t.CONSUMES.items():
        for name in consumed:
            on_topic(service, name, "READ", "DESCRIBE")
            on_topic(service, t.dlq(name), "WRITE", "DESCRIBE")
        acls.add(Acl(service, "group", f"jmo-{service}", "READ"))
    for service in t.SERVICES:
        on_topic(GATEWAY, t.events(service), "READ", "DESCRIBE")
    for name in names:
        on_topic(OPS, name, "READ", "DESCRIBE")
    acls.add(Acl(OPS, "group", "jmo-", "DESCRIBE", "PREFIXED"))
    return sorted(acls)


def _key(resource_type: int, name: str, pattern: int, principal: str, operation: int) -> tuple[Any, ...]:
    return (resource_type, name, pattern, principal, operation)


def _wire(acl: Acl) -> tuple[Any, ...]:
    return _key(RESOURCE_TYPES[acl.resource], acl.name, PATTERNS[acl.pattern], acl.kafka_principal, OPERATIONS[acl.operation])


async def present_acls(admin: AIOKafkaAdminClient) -> set[tuple[Any, ...]]:
    """Every ALLOW rule the broker's authorizer holds, as wire tuples."""
    response = await admin._send_request(DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY))  # noqa: SLF001 (aiokafka has no describe_acls)
    if response.error_code:
        raise RuntimeError(f"DescribeAcls failed: error {response.error_code} {response.error_message}")
    return {
        _key(resource_type, name, pattern, principal, operation)
        for resource_type, name, pattern, rules in response.resources
        for principal, _host, operation, permission in rules
        if permission == ALLOW
    }


async def apply_acls(bootstrap: str, acls: Iterable[Acl], client_options: Mapping[str, Any], *, timeout: float = 30.0) -> int:
    """Create ``acls`` (existing ones are kept) as the admin; return once the broker enforces them all.

    aiokafka 0.14 has the protocol messages but no ``create_acls``: the requests go through its admin
    client as they are. Returns how many were created.
    """
    wanted = {_wire(acl): acl for acl in acls}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **client_options)
    await admin.start()
    try:
        missing = [acl for key, acl in wanted.items() if key not in await present_acls(admin)]
        responses = await asyncio.gather(*(
            admin._send_request(CreateAclsRequest(*_wire(acl)[:3], acl.kafka_principal, "*", OPERATIONS[acl.operation], ALLOW))  # noqa: SLF001
            for acl in missing
        ))
        errors = [f"{acl}: {code} {message}" for acl, r in zip(missing, responses, strict=True) for code, message in r.creation_responses if code]
        if errors:
            raise RuntimeError("could not create ACLs: " + "; ".join(errors))
        deadline = time.monotonic() + timeout
        while set(wanted) - await present_acls(admin):
            if time.monotonic() > deadline:
                raise RuntimeError(f"ACLs not in force after {timeout:.0f}s")
            await asyncio.sleep(0.1)
        return len(missing)
    finally:
        await admin.close()
