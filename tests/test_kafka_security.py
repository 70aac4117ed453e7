"""Kafka authenticates every client (SASL/SCRAM-SHA-512) and authorises every topic by ACL (SPEC §11).

Against the session's real broker, with the ACLs the ``topics`` fixture derived from the contracts.
A cluster without security (an env or Docker cluster without credentials) has nothing to prove here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ClusterAuthorizationFailedError, KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from jmo_contracts import topics as t
from jmo_devstack.kafka import scram_options

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("topics")]


@pytest.fixture(autouse=True)
def _secured(infra: Any) -> None:
    if not infra.secured:
        pytest.skip(f"the {infra.source} Kafka runs without SASL credentials (PLAINTEXT)")


async def produce(infra: Any, options: dict[str, Any], topic: str) -> None:
    """Send one record to ``topic`` as ``options`` authenticate; raises what the broker answers."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, enable_idempotence=True, acks="all", request_timeout_ms=10_000, **options)
    try:
        await asyncio.wait_for(producer.start(), 30)
        await asyncio.wait_for(producer.send_and_wait(topic, b"security-test", key=b"k"), 30)
    finally:
        await producer.stop()


async def refused(infra: Any, principal: str, topic: str) -> bool:
    try:
        await produce(infra, infra.kafka_options(principal), topic)
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
        # a principal that may write no topic at all is refused a producer id (idempotence) already
        return True
    return False


async def test_a_service_writes_its_own_events_topic_but_no_other_services(infra: Any, topic_prefix: str) -> None:
    await produce(infra, infra.kafka_options("registration"), topic_prefix + t.events("registration"))
    for other in t.SERVICES:
        if other != "registration":
            assert await refused(infra, "registration", topic_prefix + t.events(other)), other
    assert await refused(infra, "biometric", topic_prefix + t.events("identity"))
    assert await refused(infra, "notification", topic_prefix + t.OTP_DELIVERY)


async def test_the_gateway_writes_commands_but_no_events_topic_and_not_the_payments_topic(infra: Any, topic_prefix: str) -> None:
    await produce(infra, infra.kafka_options("gateway"), topic_prefix + t.commands("registration"))
    for service in t.SERVICES:
        assert await refused(infra, "gateway", topic_prefix + t.events(service)), service
    assert await refused(infra, "gateway", topic_prefix + t.PAYMENTS)
    assert await refused(infra, "gateway", topic_prefix + t.OTP_DELIVERY)


async def test_only_the_payment_channel_writes_payment_confirmations(infra: Any, topic_prefix: str) -> None:
    await produce(infra, infra.kafka_options("payment-channel"), topic_prefix + t.PAYMENTS)
    assert await refused(infra, "payment-channel", topic_prefix + t.commands("registration"))
    assert await refused(infra, "registration", topic_prefix + t.PAYMENTS)


async def test_ops_reads_but_cannot_write_not_even_a_dlq(infra: Any, topic_prefix: str) -> None:
    name = topic_prefix + t.dlq(t.commands("registration"))
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=None, **infra.kafka_options("ops"))
    await consumer.start()
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        assert (await consumer.end_offsets([tp]))[tp] >= 0
    finally:
        await consumer.stop()
    assert await refused(infra, "ops", name)
    assert await refused(infra, "ops", topic_prefix + t.commands("registration"))


async def test_a_service_cannot_read_a_topic_it_does_not_consume(infra: Any, topic_prefix: str) -> None:
    consumer = AIOKafkaConsumer(topic_prefix + t.OTP_DELIVERY, bootstrap_servers=infra.kafka_bootstrap, group_id=None, auto_offset_reset="earliest", **infra.kafka_options("registration"))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(consumer.start(), 30)
            await asyncio.wait_for(consumer.getmany(timeout_ms=5000), 30)
    finally:
        await consumer.stop()


async def test_an_unauthenticated_client_cannot_even_connect(infra: Any, topic_prefix: str) -> None:
    with pytest.raises(KafkaConnectionError):
        await produce(infra, {}, topic_prefix + t.commands("registration"))


async def test_a_wrong_password_is_refused(infra: Any, topic_prefix: str) -> None:
    with pytest.raises(KafkaError):
        await produce(infra, scram_options("gateway", "not-the-password"), topic_prefix + t.commands("registration"))
