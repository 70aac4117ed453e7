"""A partition's messages come in batches, on the real broker: different streams are handled side
by side and each stream in order; a failing stream waits while the rest of its partition goes on;
and a partition held for its failing message does not hold the topic's other partitions; a message
delivered again by a rebalance while still in hand waits for its first handling.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from jmo_contracts import Envelope, new_id
from jmo_contracts.topics import TopicSpec, dlq
from jmo_devstack.topics import create_topics
from jmo_eventstore.testing import an_event
from jmo_runtime.kafka_security import faststream_security
from jmo_runtime.messaging import FailureBudget, subscribe

pytestmark = pytest.mark.integration


def _broker(infra: Any) -> KafkaBroker:
    return KafkaBroker(infra.kafka_bootstrap, security=faststream_security(infra.admin_options()))  # the mechanics, not the ACLs


async def _topic(infra: Any, run_id: str, name: str, partitions: int = 1) -> str:
    topic = f"{run_id}.{name}-{new_id()[:6]}"
    await create_topics(infra.kafka_bootstrap, client_options=infra.admin_options(), specs=[TopicSpec(topic, partitions=partitions), TopicSpec(dlq(topic), partitions=1)])
    return topic


async def _publish_before_anyone_reads(infra: Any, topic: str, envelopes: list[Envelope], partition: int | None = None) -> None:
    """Publish with a broker that consumes nothing, so the consumer started next finds them all waiting (one fetch)."""
    async with _broker(infra) as sender:
        await sender.start()
        for envelope in envelopes:
            await _send(sender, topic, envelope, partition)


async def _send(broker: KafkaBroker, topic: str, envelope: Envelope, partition: int | None = None) -> None:
    await broker.publish(envelope.to_json(), topic=topic, key=envelope.stream_id.encode(), headers=envelope.kafka_headers(), partition=partition)


async def test_streams_of_one_partition_are_handled_side_by_side_and_each_in_order(infra: Any, run_id: str) -> None:
    topic = await _topic(infra, run_id, "side-by-side")
    a, b = f"test-{new_id()}", f"test-{new_id()}"
    a1, b1, a2, b2 = an_event(a, 1), an_event(b, 1), an_event(a, 2), an_event(b, 2)
    await _publish_before_anyone_reads(infra, topic, [a1, b1, a2, b2])
    order: dict[str, list[str]] = {a: [], b: []}
    b1_handled, all_handled = asyncio.Event(), asyncio.Event()
    a1_waited_in_vain = False

    async def handler(envelope: Envelope) -> None:
        nonlocal a1_waited_in_vain
        if envelope.message_id == a1.message_id:  # a1 comes first in the partition: it finishes only once b1 (after it) was handled
            try:
                await asyncio.wait_for(b1_handled.wait(), 15)
            except TimeoutError:
                a1_waited_in_vain = True
        order[envelope.stream_id].append(envelope.message_id)
        if envelope.message_id == b1.message_id:
            b1_handled.set()
        if sum(map(len, order.values())) == 4:
            all_handled.set()

    broker = _broker(infra)
    committer = subscribe(broker, topic, group_id=f"side-{run_id}", handler=handler, description="test")
    async with broker:
        await broker.start()
        await asyncio.wait_for(all_handled.wait(), 60)
        await committer.close()
    assert not a1_waited_in_vain  # b1 was handled while a1 was in hand
    assert order == {a: [a1.message_id, a2.message_id], b: [b1.message_id, b2.message_id]}  # each stream in its order


async def test_a_failing_stream_waits_while_the_rest_of_its_partition_goes_on(infra: Any, run_id: str) -> None:
    topic = await _topic(infra, run_id, "one-stream-fails")
    a, b = f"test-{new_id()}", f"test-{new_id()}"
    a1, b1, a2, b2 = an_event(a, 1), an_event(b, 1), an_event(a, 2), an_event(b, 2)
    await _publish_before_anyone_reads(infra, topic, [a1, b1, a2, b2])
    calls: Counter[str] = Counter()
    handled: dict[str, list[str]] = {a: [], b: []}
    b_done_before_a1, done = [], asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        calls[envelope.message_id] += 1
        if envelope.message_id == a1.message_id and calls[a1.message_id] == 1:
            raise ValueError("fails once")
        if envelope.message_id == a1.message_id:
            b_done_before_a1.extend(handled[b])
        if envelope.message_id not in handled[envelope.stream_id]:  # handlers are idempotent by message id
            handled[envelope.stream_id].append(envelope.message_id)
        if len(handled[a]) + len(handled[b]) == 4:
            done.set()

    broker = _broker(infra)
    committer = subscribe(broker, topic, group_id=f"fails-{run_id}", handler=handler, description="test", budget=FailureBudget(attempts=3, first_pause=0.5))
    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 60)
        await committer.close()
    assert handled == {a: [a1.message_id, a2.message_id], b: [b1.message_id, b2.message_id]}
    assert calls[a1.message_id] == 2 and calls[a2.message_id] == 1  # a2 waited for a1: never handled before it
    assert b_done_before_a1 == [b1.message_id, b2.message_id]  # b went on while a1 waited for its redelivery


async def test_a_partition_held_for_its_failing_message_does_not_hold_the_other_partitions(infra: Any, run_id: str) -> None:
    topic = await _topic(infra, run_id, "held", partitions=2)
    failing, later = an_event(f"test-{new_id()}", 1), an_event(f"test-{new_id()}", 2)
    calls: Counter[str] = Counter()
    failed_once, later_handled = asyncio.Event(), asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        calls[envelope.message_id] += 1
        if envelope.message_id == failing.message_id:
            failed_once.set()
            raise ValueError("a bug: fails every time")
        later_handled.set()

    broker = _broker(infra)
    budget = FailureBudget(attempts=3, first_pause=60.0, max_pause=60.0)  # its partition is held a minute before the next attempt
    committer = subscribe(broker, topic, group_id=f"held-{run_id}", handler=handler, description="test", budget=budget)
    async with broker:
        await broker.start()
        await _send(broker, topic, failing, partition=0)
        await asyncio.wait_for(failed_once.wait(), 60)
        await _send(broker, topic, later, partition=1)
        await asyncio.wait_for(later_handled.wait(), 40)  # well inside the failing partition's minute
        await committer.close()
    assert calls == Counter({failing.message_id: 1, later.message_id: 1})


async def test_a_slow_message_holds_its_own_partition_and_not_the_topic(infra: Any, run_id: str) -> None:
    topic = await _topic(infra, run_id, "slow", partitions=2)
    slow, later, after_slow = an_event(f"test-{new_id()}", 1), an_event(f"test-{new_id()}", 2), an_event(f"test-{new_id()}", 3)
    slow_started, later_handled, all_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    slow_waited_in_vain = False
    handled: list[str] = []

    async def handler(envelope: Envelope) -> None:
        nonlocal slow_waited_in_vain
        if envelope.message_id == slow.message_id:  # slow until a message of the other partition, sent after it, was handled
            slow_started.set()
            try:
                await asyncio.wait_for(later_handled.wait(), 20)
            except TimeoutError:
                slow_waited_in_vain = True
        handled.append(envelope.message_id)
        if envelope.message_id == later.message_id:
            later_handled.set()
        if len(handled) == 3:
            all_done.set()

    broker = _broker(infra)
    committer = subscribe(broker, topic, group_id=f"slow-{run_id}", handler=handler, description="test", hold_after=0.5)
    async with broker:
        await broker.start()
        await _send(broker, topic, slow, partition=0)
        await asyncio.wait_for(slow_started.wait(), 60)
        await _send(broker, topic, later, partition=1)
        await _send(broker, topic, after_slow, partition=0)  # waits behind the slow one, in its partition's order
        await asyncio.wait_for(all_done.wait(), 60)
        await committer.close()
    assert not slow_waited_in_vain
    assert handled == [later.message_id, slow.message_id, after_slow.message_id]


async def test_a_message_a_rebalance_delivers_again_while_in_hand_waits_for_its_first_handling(infra: Any, run_id: str) -> None:
    """Another member joins the group while a slow message is handled in the background: the
    partition comes back from its committed offset and the message is delivered again. The second
    handling must start only after the first ended, never beside it."""
    topic, other_topic = await _topic(infra, run_id, "rebalanced"), await _topic(infra, run_id, "joiner")
    group = f"rebalanced-{run_id}"
    slow = an_event(f"test-{new_id()}", 1)
    started, release = asyncio.Event(), asyncio.Event()
    in_hand, most_in_hand, calls = 0, 0, 0

    async def handler(envelope: Envelope) -> None:
        nonlocal in_hand, most_in_hand, calls
        calls += 1
        in_hand += 1
        most_in_hand = max(most_in_hand, in_hand)
        started.set()
        try:
            await asyncio.wait_for(release.wait(), 30)
        finally:
            in_hand -= 1

    async def nothing(_envelope: Envelope) -> None:
        return None

    broker, joiner = _broker(infra), _broker(infra)
    committer = subscribe(broker, topic, group_id=group, handler=handler, description="test", hold_after=0.2)
    joined = subscribe(joiner, other_topic, group_id=group, handler=nothing, description="test")
    async with broker:
        await broker.start()
        await _send(broker, topic, slow)
        await asyncio.wait_for(started.wait(), 60)
        async with joiner:
            await joiner.start()  # the group rebalances: the slow message's partition starts again from its committed offset
            await asyncio.sleep(8)  # long enough for the rebalance and the delivery again
            release.set()
            await asyncio.sleep(2)
            await joined.close()
        await committer.close()
    assert most_in_hand == 1  # never two handlings of the stream at once
    assert calls == 2, "the rebalance did not deliver the message again: nothing was tested"
