"""Kafka credentials from the environment: a service's own, a tool's per principal, none = PLAINTEXT."""

from __future__ import annotations

import pytest
from faststream.security import SASLScram256, SASLScram512

from jmo_runtime import ServiceSettings
from jmo_runtime.kafka_security import KafkaCredentials, client_options, credentials_from_env, credentials_from_options, password_variable

pytestmark = pytest.mark.unit


def test_a_service_without_a_kafka_username_connects_in_plaintext(monkeypatch):
    monkeypatch.delenv("JMO_KAFKA_USERNAME", raising=False)
    assert ServiceSettings().kafka_credentials() is None
    assert client_options(None) == {}


def test_a_service_authenticates_with_scram_sha_512_as_its_username(monkeypatch):
    monkeypatch.setenv("JMO_KAFKA_USERNAME", "registration")
    monkeypatch.setenv("JMO_KAFKA_PASSWORD", "s3cret")
    credentials = ServiceSettings().kafka_credentials()
    assert credentials == KafkaCredentials("registration", "s3cret")
    assert "s3cret" not in repr(credentials)
    assert credentials.client_options() == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "registration", "sasl_plain_password": "s3cret",
    }
    assert isinstance(credentials.faststream(), SASLScram512)


def test_a_username_without_a_password_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("JMO_KAFKA_USERNAME", "registration")
    monkeypatch.delenv("JMO_KAFKA_PASSWORD", raising=False)
    with pytest.raises(ValueError, match="JMO_KAFKA_PASSWORD"):
        ServiceSettings().kafka_credentials()


def test_scram_sha_256_and_tls_can_be_chosen():
    credentials = KafkaCredentials("ops", "pw", "SCRAM-SHA-256", "SASL_SSL")
    assert isinstance(credentials.faststream(), SASLScram256)
    assert credentials.client_options()["ssl_context"] is not None
    with pytest.raises(ValueError):
        KafkaCredentials("ops", "pw", "PLAIN")


def test_a_tool_finds_each_principals_password_by_name():
    env = {"JMO_KAFKA_PASSWORD_PAYMENT_CHANNEL": "p", "JMO_KAFKA_PASSWORD_GATEWAY": "g"}
    assert password_variable("payment-channel") == "JMO_KAFKA_PASSWORD_PAYMENT_CHANNEL"
    assert credentials_from_env("payment-channel", env) == KafkaCredentials("payment-channel", "p")
    assert credentials_from_env("gateway", env) == KafkaCredentials("gateway", "g")
    assert credentials_from_env("ops", env) is None
    assert credentials_from_env("ops", {"JMO_KAFKA_USERNAME": "ops", "JMO_KAFKA_PASSWORD": "o"}) == KafkaCredentials("ops", "o")
    assert credentials_from_env("ops", {"JMO_KAFKA_USERNAME": "gateway", "JMO_KAFKA_PASSWORD": "g"}) is None


def test_aiokafka_options_round_trip():
    credentials = KafkaCredentials("biometric", "b")
    assert credentials_from_options(credentials.client_options()) == credentials
    assert credentials_from_options({}) is None
