"""Who a Kafka client is: SASL/SCRAM credentials from the environment, as aiokafka or faststream options.

Every client of the system authenticates as one principal (a service, ``gateway``,
``payment-channel`` or ``ops``) and may only do what the broker's ACLs grant that principal
(derived from ``jmo_contracts.topics``, see ``jmo_devstack.acls``). A process that *is* one
principal (a service) reads ``JMO_KAFKA_USERNAME`` / ``JMO_KAFKA_PASSWORD``; a tool that acts for
several (the gateway simulator, ``jmo dlq``) reads each principal's password from
``JMO_KAFKA_PASSWORD_<PRINCIPAL>`` (``payment-channel`` -> ``JMO_KAFKA_PASSWORD_PAYMENT_CHANNEL``).
Without credentials a client connects in PLAINTEXT (an external cluster without security).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCRAM_SHA_512 = "SCRAM-SHA-512"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


def password_variable(principal: str) -> str:
    """The variable holding ``principal``'s password for tools acting as several principals."""
    return "JMO_KAFKA_PASSWORD_" + principal.upper().replace("-", "_")


@dataclass(frozen=True)
class KafkaCredentials:
    """A SASL/SCRAM identity."""

    username: str
    password: str = field(repr=False)
    mechanism: str = SCRAM_SHA_512
    security_protocol: str = "SASL_PLAINTEXT"

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"SASL mechanism {self.mechanism!r}; expected one of {MECHANISMS}")
        if self.security_protocol not in PROTOCOLS:
            raise ValueError(f"Kafka security protocol {self.security_protocol!r}; expected one of {PROTOCOLS}")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }
        if self.security_protocol == "SASL_SSL":
            options["ssl_context"] = ssl.create_default_context()
        return options

    def faststream(self) -> Any:
        """The faststream security object for ``KafkaBroker(security=...)``."""
        from faststream.security import SASLScram256, SASLScram512

        cls = SASLScram512 if self.mechanism == SCRAM_SHA_512 else SASLScram256
        tls = self.security_protocol == "SASL_SSL"
        return cls(self.username, self.password, ssl_context=ssl.create_default_context() if tls else None, use_ssl=tls)


def credentials_from_options(options: Mapping[str, Any]) -> KafkaCredentials | None:
    """The credentials in aiokafka options (``sasl_plain_username`` ...); ``None`` for PLAINTEXT ones."""
    if not options.get("sasl_plain_username"):
        return None
    return KafkaCredentials(options["sasl_plain_username"], options["sasl_plain_password"], options.get("sasl_mechanism", SCRAM_SHA_512), options.get("security_protocol", "SASL_PLAINTEXT"))


def faststream_security(options: Mapping[str, Any]) -> Any:
    """faststream's security object for aiokafka ``options`` (``None`` for PLAINTEXT)."""
    credentials = credentials_from_options(options)
    return credentials.faststream() if credentials else None


def client_options(credentials: KafkaCredentials | None) -> dict[str, Any]:
    """aiokafka keyword arguments for ``credentials``; none (PLAINTEXT) without them."""
    return credentials.client_options() if credentials is not None else {}


def credentials_from_env(principal: str, environ: Mapping[str, str] = os.environ) -> KafkaCredentials | None:
    """``principal``'s credentials: ``JMO_KAFKA_PASSWORD_<PRINCIPAL>``, or ``JMO_KAFKA_USERNAME`` /
    ``JMO_KAFKA_PASSWORD`` when the username is ``principal``; ``None`` if neither is set."""
    password = environ.get(password_variable(principal))
    if not password and environ.get("JMO_KAFKA_USERNAME") == principal:
        password = environ.get("JMO_KAFKA_PASSWORD")
    if not password:
        return None
    return KafkaCredentials(
        principal,
        password,
        environ.get("JMO_KAFKA_SASL_MECHANISM") or SCRAM_SHA_512,
        environ.get("JMO_KAFKA_SECURITY_PROTOCOL") or "SASL_PLAINTEXT",
    )
