"""A service wired in memory for component tests: faststream's TestKafkaBroker, the service's own
subscribers, command handler and relay (publishing through the test broker), and what it published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import TestKafkaBroker

from jmo_contracts import Envelope

from .messaging import message_itself
from .service import BrokerRecordPublisher, Service


class FakeClock:
    """A service's clock in a test (``build(..., clock=FakeClock())``): it moves only when the test
    moves it, so an expiry is seen without waiting for time to pass."""

    def __init__(self, now: datetime = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@asynccontextmanager
async def running_in_memory(service: Service, observed_topic: str) -> AsyncIterator[list[Envelope]]:
    """Start ``service`` (built with an in-memory store and checkpoints) on a test broker; yield the
    list that collects every envelope published on ``observed_topic``, in order."""
    service._relay_publisher = BrokerRecordPublisher(service.broker)  # noqa: SLF001 - the relay goes through the test broker
    observed: list[Envelope] = []

    @service.broker.subscriber(observed_topic, group_id="test-observer", decoder=message_itself)
    async def observe(msg: Any) -> None:
        observed.append(Envelope.from_json(msg.body))

    async with TestKafkaBroker(service.broker):
        await service.start_store()
        await service.start_relay()
        try:
            yield observed
        finally:
            await service.stop()
