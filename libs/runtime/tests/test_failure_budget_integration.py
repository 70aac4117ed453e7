"""A message that keeps failing is parked, one that waits for the store is not: on the real broker.

faststream's in-memory broker does not redeliver a nacked message, so this runs on Kafka.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pymongo.errors import AutoReconnect

from jmo_contracts import Envelope, new_id
from jmo_contracts.topics import TopicSpec, dlq
from jmo_devstack.topics import create_topics, read_records
from jmo_eventstore.testing import an_event
from jmo_runtime.kafka_security import faststream_security
from jmo_runtime.messaging import DLQ_ERROR, DLQ_REASON, FailureBudget, Unprocessable, publish, subscribe

pytestmark = pytest.mark.integration


async def test_a_failing_message_is_parked_after_its_budget_and_a_waiting_one_is_not(infra: Any, run_id: str) -> None:
    topic = f"{run_id}.budget-{new_id()[:6]}"
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=[TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), partitions=1)])
    stream = f"test-{new_id()}"
    broken, refused, waiting, fine = (an_event(stream, n) for n in range(4))
    calls: Counter[str] = Counter()
    handled: list[str] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        calls[envelope.message_id] += 1
        if envelope.message_id == broken.message_id:
            raise ValueError("a bug that fails this message every time")
        if envelope.message_id == refused.message_id:
            raise Unprocessable("REGISTRY_REFUSED", "dukcapil verify: rejected with HTTP 400")
        if envelope.message_id == waiting.message_id and calls[envelope.message_id] <= 4:
            raise AutoReconnect("the store is restarting")  # transient: more failures than the budget, never parked
        handled.append(envelope.message_id)
        if envelope.message_id == fine.message_id:
            done.set()

    broker = KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.admin_options()))  # the mechanics, not the ACLs
    subscribe(broker, topic, group_id=f"budget-{run_id}", handler=handler, description="test", budget=FailureBudget(attempts=3, first_pause=0.05))
    async with broker:
        await broker.start()
        for envelope in (broken, refused, waiting, fine):
            await publish(broker, topic, envelope)
        await asyncio.wait_for(done.wait(), 60)
    parked = await read_records(infra.kafka_bootstrap, dlq(topic), 2, client_options=infra.admin_options())

    assert handled == [waiting.message_id, fine.message_id]  # in order, the partition moved on
    assert (calls[broken.message_id], calls[refused.message_id], calls[waiting.message_id]) == (3, 1, 5)
    assert [Envelope.from_json(r.value).message_id for r in parked] == [broken.message_id, refused.message_id]
    headers = [{k: v.decode() for k, v in r.headers} for r in parked]
    assert (headers[0][DLQ_REASON], headers[0][DLQ_ERROR]) == ("HANDLER_FAILED", "ValueError")  # the class only: messages may quote personal data
    assert headers[1][DLQ_REASON] == "REGISTRY_REFUSED"
    assert parked[0].value == broken.to_json()  # parked byte for byte, to be replayed once fixed

