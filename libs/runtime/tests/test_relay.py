"""The relay from the log to Kafka, with an in-memory store and a recording publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from jmo_contracts import new_id, stream_id
from jmo_eventstore import InMemoryEventStore
from jmo_eventstore.testing import an_event
from jmo_runtime.relay import InMemoryCheckpoints, OutgoingRecord, Relay

pytestmark = pytest.mark.unit


class Recorder:
    """Keeps what it was given; can be told to fail after some records (a crash mid-batch)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.records: list[OutgoingRecord] = []
        self.fail_after = fail_after

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        for r in records:
            if self.fail_after is not None and len(self.records) >= self.fail_after:
                self.fail_after = None
                raise ConnectionError("broker went away")
            self.records.append(r)


async def a_log(streams: int = 3, per_stream: int = 4) -> tuple[InMemoryEventStore, list[str]]:
    store = InMemoryEventStore()
    ids = [stream_id("test") for _ in range(streams)]
    for v in range(per_stream):
        for s in ids:
            await store.append(s, v, [an_event(s, v)], cause_id=new_id())
    return store, ids


def relay(store: InMemoryEventStore, publisher: Recorder, checkpoints: InMemoryCheckpoints, owner: str = "a", batch: int = 5) -> Relay:
    return Relay("test-events", store, publisher, checkpoints, lambda _t: "jmo.test.events", batch_size=batch, owner=owner)


def ids_of(records: list[OutgoingRecord]) -> list[bytes]:
    return [r.value for r in records]


async def test_every_event_is_published_once_in_log_order_keyed_by_its_stream() -> None:
    store, streams = await a_log()
    out = Recorder()
    r = relay(store, out, InMemoryCheckpoints())
    while await r.run_once():
        pass
    everything = await store.read_all(0, limit=100)
    assert ids_of(out.records) == [e.envelope.to_json() for e in everything]
    assert [rec.key for rec in out.records] == [e.envelope.stream_id.encode() for e in everything]
    headers = dict(out.records[0].headers)
    assert headers["jmo-type"] == b"CommandRejected" and headers["jmo-correlation-id"] == everything[0].envelope.correlation_id.encode()


async def test_after_a_crash_mid_batch_the_relay_resumes_from_its_checkpoint_and_loses_nothing() -> None:
    store, streams = await a_log()
    checkpoints = InMemoryCheckpoints()
    out = Recorder(fail_after=7)
    r = relay(store, out, checkpoints)
    assert await r.run_once() == 5
    with pytest.raises(ConnectionError):
        await r.run_once()
    assert checkpoints.positions["test-events"] == 5  # not moved past what Kafka acknowledged
    restarted = relay(store, out, checkpoints)
    while await restarted.run_once():
        pass
    everything = [e.envelope.to_json() for e in await store.read_all(0, limit=100)]
    assert set(ids_of(out.records)) == set(everything)
    assert ids_of(out.records) == everything[:7] + everything[5:]  # at least once: the failed batch again
    for s in streams:  # first deliveries keep each stream's order
        firsts = list(dict.fromkeys(v for v in ids_of(out.records) if s.encode() in v))
        assert firsts == [v for v in everything if s.encode() in v]


async def test_of_two_relays_on_one_log_only_the_lease_holder_publishes() -> None:
    store, _ = await a_log()
    checkpoints = InMemoryCheckpoints()
    first, second = Recorder(), Recorder()
    a, b = relay(store, first, checkpoints, owner="a"), relay(store, second, checkpoints, owner="b")
    for _ in range(5):
        await a.run_once()
        await b.run_once()
    assert len(first.records) == 12 and second.records == []


async def test_a_relay_that_lost_its_lease_does_not_move_the_checkpoint() -> None:
    store, _ = await a_log()
    checkpoints = InMemoryCheckpoints()
    r = relay(store, Recorder(), checkpoints, owner="a")
    await r.run_once()
    checkpoints.owners["test-events"] = "b"  # the lease passed to another instance
    assert await r.run_once() == 0
    assert checkpoints.positions["test-events"] == 5


class DisguisingStore(InMemoryEventStore):
    """Like PyMongo: a cancellation that lands mid-operation comes out as a network error."""

    async def sequence(self, max_commits: int = 1000) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ConnectionError("connection closed") from None
        return 0


async def test_a_relay_that_is_cancelled_stops_even_when_the_driver_disguises_the_cancellation() -> None:
    r = Relay("test-events", DisguisingStore(), Recorder(), InMemoryCheckpoints(), lambda _t: "t", owner="a")
    task = asyncio.create_task(r.run(asyncio.Event()))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert task in done and task.cancelled()
