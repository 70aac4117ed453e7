"""Offsets committed in batches, on the real broker: the group's committed offset follows what was
handled within a few intervals with far fewer OffsetCommit requests than messages, never passes a
message that is failing, and a restart loses nothing and delivers again only the uncommitted tail.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo.errors import AutoReconnect

from jmo_contracts import Envelope, new_id
from jmo_contracts.topics import TopicSpec, dlq
from jmo_devstack.topics import committed_offsets, create_topics
from jmo_eventstore.testing import an_event
from jmo_runtime.kafka_security import faststream_security
from jmo_runtime.messaging import publish, subscribe

pytestmark = pytest.mark.integration

INTERVAL = 0.2


async def _committed(infra: Any, group: str, topic: str) -> int:
    return (await committed_offsets(infra.kafka_bootstrap, group, infra.admin_options())).get(topic, 0)  # over the topic's partitions


async def _until_committed(infra: Any, group: str, topic: str, at_least: int, within: float = 30.0) -> int:
    """The group's committed offset once it reaches ``at_least`` (or whatever it is after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while (committed := await _committed(infra, group, topic)) < at_least and time.monotonic() < deadline:
        await asyncio.sleep(INTERVAL / 2)
    return committed


async def _topic(infra: Any, run_id: str, name: str, partitions: int = 1) -> str:
    topic = f"{run_id}.{name}-{new_id()[:6]}"
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=[TopicSpec(topic, partitions=partitions), TopicSpec(dlq(topic), partitions=1)])
    return topic


def _recording(until: int = -1) -> tuple[list[str], asyncio.Event, Callable[[Envelope], Awaitable[None]]]:
    """A handler that records the ids it handles, and the event set once it has handled ``until``."""
    handled: list[str] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.message_id)
        if len(handled) == until:
            done.set()

    return handled, done, handler


def _broker(infra: Any) -> KafkaBroker:
    return KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.admin_options()))  # the mechanics, not the ACLs


@pytest.fixture
def commit_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the OffsetCommit requests every consumer of this process makes."""
    calls: Counter[str] = Counter()
    original = AIOKafkaConsumer.commit

    async def counting(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        calls["commit"] += 1
        await original(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counting)
    return calls


async def test_the_committed_offset_follows_what_was_handled_with_far_fewer_commits_than_messages(infra: Any, run_id: str, commit_calls: Counter[str]) -> None:
    topic, group, n = await _topic(infra, run_id, "batched"), f"batched-{run_id}", 60
    stream = f"test-{new_id()}"
    handled, done, handler = _recording(until=n)
    broker = _broker(infra)
    committer = subscribe(broker, topic, group_id=group, handler=handler, description="test", commit_interval=INTERVAL)
    async with broker:
        await broker.start()
        for k in range(n):
            await publish(broker, topic, an_event(stream, k))
        await asyncio.wait_for(done.wait(), 60)
        committed = await _until_committed(infra, group, topic, n)
        await committer.close()
    assert len(handled) == n and committed == n
    assert 0 < commit_calls["commit"] < n / 4  # one request per interval, not one per message


async def test_a_message_failing_transiently_is_delivered_again_and_never_committed_past(infra: Any, run_id: str) -> None:
    topic, group = await _topic(infra, run_id, "failing"), f"failing-{run_id}"
    stream = f"test-{new_id()}"
    events = [an_event(stream, k) for k in range(6)]
    failing = 3
    calls: Counter[str] = Counter()
    committed_while_failing: list[int] = []
    handled: list[str] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        calls[envelope.message_id] += 1
        if envelope.message_id == events[failing].message_id and calls[envelope.message_id] <= 3:
            # what was handled before it gets committed, and nothing past it
            committed_while_failing.append(await _until_committed(infra, group, topic, failing, within=10))
            raise AutoReconnect("the store is restarting")
        handled.append(envelope.message_id)
        if len(handled) == len(events):
            done.set()

    broker = _broker(infra)
    committer = subscribe(broker, topic, group_id=group, handler=handler, description="test", commit_interval=INTERVAL)
    async with broker:
        await broker.start()
        for envelope in events:
            await publish(broker, topic, envelope)
        await asyncio.wait_for(done.wait(), 60)
        await committer.close()
        committed = await _committed(infra, group, topic)
    assert handled == [e.message_id for e in events]  # in order, the failing one after its failures
    assert calls[events[failing].message_id] == 4
    assert committed_while_failing == [failing] * 3
    assert committed == len(events)


async def test_a_restart_loses_nothing_and_delivers_again_at_most_the_uncommitted_tail(infra: Any, run_id: str) -> None:
    topic, group = await _topic(infra, run_id, "restart"), f"restart-{run_id}"
    stream = f"test-{new_id()}"
    events = [an_event(stream, k) for k in range(40)]
    first: list[str] = []
    second: list[str] = []
    half, all_seen = asyncio.Event(), asyncio.Event()

    async def first_handler(envelope: Envelope) -> None:
        first.append(envelope.message_id)
        if len(first) == 20:
            half.set()
            await asyncio.Event().wait()  # the process stops while handling the 21st: never finished

    async def second_handler(envelope: Envelope) -> None:
        second.append(envelope.message_id)
        if envelope.message_id == events[-1].message_id:
            all_seen.set()

    broker = _broker(infra)
    subscribe(broker, topic, group_id=group, handler=first_handler, description="test", commit_interval=INTERVAL)
    async with broker:
        await broker.start()
        for envelope in events:
            await publish(broker, topic, envelope)
        await asyncio.wait_for(half.wait(), 60)
    # stopped without closing the committer (a crash, as far as commits go)
    committed = await _committed(infra, group, topic)

    broker = _broker(infra)
    committer = subscribe(broker, topic, group_id=group, handler=second_handler, description="test", commit_interval=INTERVAL)
    async with broker:
        await broker.start()
        await asyncio.wait_for(all_seen.wait(), 60)
        await committer.close()  # a clean stop commits the tail
        final = await _committed(infra, group, topic)

    ids = [e.message_id for e in events]
    assert committed < 20 and first == ids[:20]  # the 20th never finished: nothing past it committed
    assert second == ids[committed:]  # nothing lost; delivered again only what was not committed
    assert final == len(events)


async def test_partitions_revoked_in_a_rebalance_are_committed_before_their_next_owner_reads(infra: Any, run_id: str) -> None:
    topic, group, n = await _topic(infra, run_id, "revoke", partitions=2), f"revoke-{run_id}", 20
    first, done, first_handler = _recording(until=n)
    second, _, second_handler = _recording()
    one, two = _broker(infra), _broker(infra)
    never = 600.0  # the timer never commits here: only the rebalance listener can
    subscribe(one, topic, group_id=group, handler=first_handler, description="test", commit_interval=never)
    committer = subscribe(two, topic, group_id=group, handler=second_handler, description="test", commit_interval=never)
    async with one:
        await one.start()
        for k in range(n):
            await publish(one, topic, an_event(f"test-{new_id()}", k))  # streams spread over both partitions
        await asyncio.wait_for(done.wait(), 60)
        async with two:
            await two.start()  # joins the group: the first consumer's partitions are revoked
            committed = await _until_committed(infra, group, topic, n)
            await committer.close()
    assert len(first) == n and committed == n
    assert second == []  # its next owner started after what was handled: nothing delivered twice
