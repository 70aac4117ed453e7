"""One consumer reads all of a process's topics, on the real broker (``subscribe_routes``): each
topic's messages reach its own handler through its own boundary, what is bad is parked in that
topic's DLQ, one topic's slow message does not hold another topic, and the offsets of every topic
are committed, so the group started again is given nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from jmo_contracts import Envelope, new_id
from jmo_contracts.topics import TopicSpec, dlq
from jmo_devstack.topics import committed_offsets, create_topics, read_records
from jmo_eventstore.testing import an_event
from jmo_runtime.kafka_security import faststream_security
from jmo_runtime.messaging import DLQ_REASON, DLQ_SOURCE, Boundary, Route, subscribe_routes

pytestmark = pytest.mark.integration


def _broker(infra: Any) -> KafkaBroker:
    return KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.admin_options()))


async def _topics(infra: Any, run_id: str, *names: str) -> list[str]:
    made = [f"{run_id}.{name}-{new_id()[:6]}" for name in names]
    specs = [spec for topic in made for spec in (TopicSpec(topic, partitions=2), TopicSpec(dlq(topic), partitions=1))]
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=specs)
    return made


async def _send(broker: KafkaBroker, topic: str, envelope: Envelope) -> None:
    await broker.publish(envelope.to_json(), topic=topic, key=envelope.stream_id.encode(), headers=envelope.kafka_headers())


async def test_one_consumer_routes_each_topic_to_its_handler_parks_per_topic_and_commits_every_topic(infra: Any, run_id: str) -> None:
    first, second = await _topics(infra, run_id, "first", "second")
    group = f"routes-{run_id}"
    stream = f"test-{new_id()}"  # the same stream (key) on both topics: two chains, one per topic
    slow, other, passed_over = an_event(stream, 1), an_event(stream, 1), an_event(stream, 2)
    passed_over_type = "SomethingElse"
    handled: dict[str, list[str]] = {first: [], second: []}
    second_handled, done = asyncio.Event(), asyncio.Event()
    slow_waited_in_vain = False

    async def on_first(envelope: Envelope) -> None:
        nonlocal slow_waited_in_vain
        if envelope.message_id == slow.message_id:  # slow until the other topic's message, sent after it, was handled
            try:
                await asyncio.wait_for(second_handled.wait(), 20)
            except TimeoutError:
                slow_waited_in_vain = True
        handled[first].append(envelope.message_id)
        done.set()

    async def on_second(envelope: Envelope) -> None:
        handled[second].append(envelope.message_id)
        second_handled.set()

    accepts = frozenset({slow.type, passed_over_type})
    routes = [
        Route(first, on_first, boundary=Boundary(accepts, acts_on=frozenset({slow.type}))),
        Route(second, on_second),
    ]
    broker = _broker(infra)
    committer = subscribe_routes(broker, routes, group_id=group, hold_after=0.5, commit_interval=0.1)
    (subscriber,) = broker.subscribers  # one consumer for both topics
    async with broker:
        await broker.start()
        await _send(broker, first, slow)
        headers = {**passed_over.kafka_headers(), "jmo-type": passed_over_type}
        await broker.publish(passed_over.to_json(), topic=first, key=stream.encode(), headers=headers)  # passed over unread by its header
        await broker.publish(b'{"not": "an envelope"', topic=second, key=b"bad")
        await _send(broker, second, other)
        await asyncio.wait_for(done.wait(), 60)
        deadline = time.monotonic() + 30
        while (committed := await committed_offsets(infra.kafka_bootstrap, group, infra.admin_options())) != {first: 2, second: 2} and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await committer.close()
    parked = await read_records(infra.kafka_bootstrap, dlq(second), 1, client_options=infra.admin_options())

    assert not slow_waited_in_vain  # the second topic went on while the first held its slow message
    assert handled == {first: [slow.message_id], second: [other.message_id]}
    [entry] = parked
    entry_headers = {k: v.decode() for k, v in entry.headers}
    assert entry_headers[DLQ_REASON] == "INVALID_ENVELOPE" and entry_headers[DLQ_SOURCE].startswith(f"{second}/")
    assert committed == {first: 2, second: 2}  # every message of both topics, the passed-over and the parked ones too

    calls: list[str] = []

    async def record(envelope: Envelope) -> None:
        calls.append(envelope.message_id)

    again = _broker(infra)
    restarted = subscribe_routes(again, [Route(first, record), Route(second, record)], group_id=group)
    async with again:
        await again.start()
        await asyncio.sleep(5)  # the group's committed offsets are where it starts: nothing is given again
        await restarted.close()
    assert calls == []
    assert set(subscriber.topic_names_for_subscribe) == {first, second}
