"""The gateway following a journey by correlation id (``Gateway.until`` / ``Gateway.events``), on real Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jmo_cli.gateway import Gateway
from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.biometric import SelfieRejected, SelfieRejectionReason

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]


async def test_an_event_fetched_together_with_the_one_waited_for_is_seen_by_the_next_wait(infra: Any, topic_prefix: str) -> None:
    """Two events of a journey written together (one stream, so one partition; one batch, so one
    fetch): waiting for the first must not swallow the second."""
    pid, session, correlation_id = new_id(), new_id(), new_id()

    def rejected(attempt: int) -> Envelope:
        event = SelfieRejected(
            participant_id=pid, session_id=session, attempt=attempt, reason_code=SelfieRejectionReason.NOT_MATCHING, reason="Wajah tidak cocok",
            attempts_left=3 - attempt, distance=0.71, threshold=0.5,
        )
        return Envelope.wrap(event, stream_id=f"biometric-{session}", correlation_id=correlation_id)

    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        await asyncio.gather(*(gateway.send(rejected(attempt), topic=topics.events("biometric")) for attempt in (1, 2)))  # one produce request
        [first] = await gateway.until(correlation_id, {"SelfieRejected"}, timeout=30)
        [second] = await gateway.until(correlation_id, {"SelfieRejected"}, timeout=30)
    assert (first.payload["attempt"], second.payload["attempt"]) == (1, 2)


async def test_events_of_another_journey_read_while_following_one_are_seen_by_whoever_follows_that_one(infra: Any, topic_prefix: str) -> None:
    """Two journeys followed through one gateway: what arrived for the second while the first was
    followed is not thrown away."""
    pid, session = new_id(), new_id()
    first_journey, second_journey = new_id(), new_id()

    def rejected(attempt: int, correlation_id: str) -> Envelope:
        event = SelfieRejected(
            participant_id=pid, session_id=session, attempt=attempt, reason_code=SelfieRejectionReason.NOT_MATCHING, reason="Wajah tidak cocok",
            attempts_left=3 - attempt, distance=0.71, threshold=0.5,
        )
        return Envelope.wrap(event, stream_id=f"biometric-{session}", correlation_id=correlation_id)

    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        await gateway.send(rejected(1, second_journey), topic=topics.events("biometric"))  # read first, while the first journey is followed
        await gateway.send(rejected(2, first_journey), topic=topics.events("biometric"))
        [first] = await gateway.until(first_journey, {"SelfieRejected"}, timeout=30)
        [second] = await gateway.until(second_journey, {"SelfieRejected"}, timeout=5)
    assert (first.payload["attempt"], second.payload["attempt"]) == (2, 1)
