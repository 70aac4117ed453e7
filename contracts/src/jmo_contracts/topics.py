"""Every Kafka topic of the system, named in one place.

Names are stable and environment-independent; a deployment (or a test run) may put a prefix in
front of all of them (``JMO_TOPIC_PREFIX``) so that several runs share one cluster without seeing
each other's messages. Topics are created explicitly (auto-create is off on our brokers).
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICES: tuple[str, ...] = ("registration", "identity", "biometric", "profile-update", "notification")

DLQ_SUFFIX = ".dlq"
ONE_HOUR_MS = 60 * 60 * 1000
ONE_DAY_MS = 24 * ONE_HOUR_MS
SEVEN_DAYS_MS = 7 * 24 * ONE_HOUR_MS


def _check(service: str) -> None:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")


def commands(service: str) -> str:
    """The topic on which the gateway sends commands to ``service``."""
    _check(service)
    return f"jmo.{service}.commands"


def events(service: str) -> str:
    """The topic on which ``service`` publishes the events of its log."""
    _check(service)
    return f"jmo.{service}.events"


def dlq(topic: str) -> str:
    """Where a consumer of ``topic`` parks what it cannot parse (error details in headers)."""
    return topic + DLQ_SUFFIX


#: OTP codes travel only here, encrypted for the notification service, and only briefly.
OTP_DELIVERY = "jmo.identity.otp-delivery"

#: Payment confirmations, written only by the payment channel (never by the mobile gateway).
PAYMENTS = "jmo.registration.payments"

#: Who writes each topic (a Kafka principal, see ``deploy``/``jmo_devstack.kafka`` for the ACLs):
#: the gateway writes the commands topics, the payment channel the payments topic, each service its
#: own events topic (and identity the OTP delivery topic). DLQ topics are written by their consumers.
GATEWAY = "gateway"
PAYMENT_CHANNEL = "payment-channel"


def producer_of(topic: str) -> str:
    """The one principal allowed to write ``topic`` (a base name, without prefix)."""
    if topic == PAYMENTS:
        return PAYMENT_CHANNEL
    if topic == OTP_DELIVERY:
        return "identity"
    for service in SERVICES:
        if topic == commands(service):
            return GATEWAY
        if topic == events(service):
            return service
    raise ValueError(f"{topic!r} is not a topic of the system")

#: What each service consumes; every consumed topic gets a DLQ.
CONSUMES: dict[str, tuple[str, ...]] = {
    "registration": (commands("registration"), PAYMENTS, events("identity")),
    "identity": (commands("identity"), events("registration"), events("profile-update")),
    "biometric": (commands("biometric"), events("registration")),
    "profile-update": (commands("profile-update"), events("registration"), events("identity"), events("biometric")),
    "notification": (OTP_DELIVERY, events("registration"), events("profile-update")),
}


#: Partitions of every topic but the DLQs: how many instances of a service can share a topic's work
#: (each partition is one instance's at a time). Within an instance a topic is one consumer that
#: takes every partition's messages in batches, streams side by side (``jmo_runtime.messaging``),
#: so partitions no longer bound how many messages one process has in hand; six leaves room for
#: six instances per service.
PARTITIONS = 6


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its name and the settings that differ from the broker's defaults."""

    name: str
    partitions: int = PARTITIONS
    retention_ms: int | None = None

    def prefixed(self, prefix: str) -> TopicSpec:
        return TopicSpec(prefix + self.name, self.partitions, self.retention_ms)

    def config(self) -> dict[str, str]:
        return {} if self.retention_ms is None else {"retention.ms": str(self.retention_ms)}


def all_topics(prefix: str = "") -> list[TopicSpec]:
    """Every topic the system needs, with ``prefix`` applied, in a stable order."""
    specs: list[TopicSpec] = []
    for service in SERVICES:
        specs.append(TopicSpec(commands(service), retention_ms=SEVEN_DAYS_MS))
        specs.append(TopicSpec(events(service)))
    specs.append(TopicSpec(OTP_DELIVERY, retention_ms=ONE_HOUR_MS))
    specs.append(TopicSpec(PAYMENTS, retention_ms=SEVEN_DAYS_MS))
    consumed = sorted({t for topics in CONSUMES.values() for t in topics})
    # a parked OTP request still names its destination in clear: kept a day for ops, not forever
    specs.extend(TopicSpec(dlq(t), partitions=1, retention_ms=ONE_DAY_MS if t == OTP_DELIVERY else None) for t in consumed)
    return [s.prefixed(prefix) for s in specs]
