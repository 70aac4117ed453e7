"""The relay from the log to Kafka, with an in-memory store and a recording publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from jmo_contracts import new_id, stream_id
from jmo_eventstore import InMemoryEventStore, PendingCommit
from jmo_eventstore.testing import an_event
from jmo_runtime.relay import OutgoingRecord, Relay
from jmo_runtime.service import Service
from jmo_runtime.settings import ServiceSettings

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


async def a_log(store: InMemoryEventStore, streams: int = 3, per_stream: int = 4) -> list[str]:
    ids = [stream_id("test") for _ in range(streams)]
    for v in range(per_stream):
        for s in ids:
            await store.append(s, v, [an_event(s, v)], cause_id=new_id())
    return ids


def relay(store: InMemoryEventStore, publisher: Recorder, batch: int = 5, recover_after: float = 10.0) -> Relay:
    return Relay("test-events", store, publisher, lambda _t: "jmo.test.events", batch_size=batch, recover_after=recover_after, recover_every=0)


def values(records: list[OutgoingRecord]) -> list[bytes]:
    return [r.value for r in records]


async def in_log_order(store: InMemoryEventStore) -> list[bytes]:
    while await store.sequence():
        pass
    return [e.envelope.to_json() for e in await store.read_all(0, limit=100)]


def assert_each_stream_in_order(records: list[OutgoingRecord], everything: list[bytes], streams: list[str]) -> None:
    for s in streams:  # first deliveries keep each stream's order
        firsts = list(dict.fromkeys(v for v in values(records) if s.encode() in v))
        assert firsts == [v for v in everything if s.encode() in v]


async def test_every_event_is_published_once_in_log_order_keyed_by_its_stream_and_then_settled() -> None:
    store = InMemoryEventStore()
    await a_log(store)
    out = Recorder()
    r = relay(store, out)
    while await r.run_once():
        pass
    await r.settle()
    everything = await in_log_order(store)
    assert values(out.records) == everything
    assert [rec.key for rec in out.records] == [e.envelope.stream_id.encode() for e in await store.read_all(0, limit=100)]
    headers = dict(out.records[0].headers)
    assert headers["jmo-type"] == b"CommandRejected"
    assert store.outbox == {}


async def test_a_batch_kafka_did_not_acknowledge_is_sent_again_and_stays_pending_until_it_is() -> None:
    store = InMemoryEventStore()
    streams = await a_log(store)
    out = Recorder(fail_after=7)
    r = relay(store, out)
    assert await r.run_once() == 5
    with pytest.raises(ConnectionError):
        await r.run_once()
    assert len(store.outbox) == 12  # nothing settled that Kafka may not have
    while await r.run_once():
        pass
    await r.settle()
    everything = await in_log_order(store)
    assert values(out.records) == everything[:7] + everything[5:]  # at least once: the failed batch again
    assert_each_stream_in_order(out.records, everything, streams)
    assert store.outbox == {}


async def test_what_a_dead_instance_left_pending_is_published_by_another_instances_recovery() -> None:
    store = InMemoryEventStore()
    streams = await a_log(store)
    await store.appended_commits(100)  # taken by an instance that died before publishing
    await asyncio.sleep(0.01)
    out = Recorder()
    survivor = relay(store, out, batch=100, recover_after=0.005)
    assert await survivor.run_once() == 12
    await survivor.settle()
    everything = await in_log_order(store)
    assert sorted(values(out.records)) == sorted(everything)
    assert_each_stream_in_order(out.records, everything, streams)
    assert store.outbox == {}


async def test_a_streams_earlier_commit_still_pending_elsewhere_is_published_before_the_next() -> None:
    store = InMemoryEventStore()
    s = stream_id("test")
    await store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
    await store.appended_commits(10)  # appended by another instance, not published yet
    await store.append(s, 1, [an_event(s, 2)], cause_id=new_id())
    out = Recorder()
    assert await relay(store, out).run_once() == 2
    assert values(out.records) == await in_log_order(store)


class StallsOnce(InMemoryEventStore):
    """A store that does not answer one of the recovery round's calls in time (a timeout under load)."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    async def _maybe_fail(self, call: str) -> None:
        if self.failing == call:
            self.failing = ""
            raise TimeoutError(f"{call} timed out")

    async def heartbeat(self) -> None:
        await self._maybe_fail("heartbeat")

    async def settle(self, commits: Sequence[str]) -> None:
        await self._maybe_fail("settle")
        await super().settle(commits)

    async def pending_commits(self, *, older_than: float, limit: int) -> list[PendingCommit]:
        await self._maybe_fail("pending_commits")
        return await super().pending_commits(older_than=older_than, limit=limit)


@pytest.mark.parametrize("failing", ["heartbeat", "settle", "pending_commits"])
async def test_commits_taken_for_a_round_whose_recovery_step_fails_are_published_by_the_next_round(failing: str) -> None:
    store = StallsOnce(failing)
    streams = await a_log(store, streams=2, per_stream=2)
    out = Recorder()
    r = relay(store, out, batch=100)
    with pytest.raises(TimeoutError):
        await r.run_once()
    assert out.records == []
    while await r.run_once():
        pass
    await r.settle()
    everything = await in_log_order(store)
    assert values(out.records) == everything  # none of the four lost, each once, in order
    assert_each_stream_in_order(out.records, everything, streams)
    assert store.outbox == {}


class DisguisingStore(InMemoryEventStore):
    """Like PyMongo: a cancellation that lands mid-operation comes out as a network error."""

    async def pending_commits(self, *, older_than: float, limit: int) -> list[PendingCommit]:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ConnectionError("connection closed") from None
        return []


async def test_a_relay_that_is_cancelled_stops_even_when_the_driver_disguises_the_cancellation() -> None:
    r = Relay("test-events", DisguisingStore(), Recorder(), lambda _t: "t")
    task = asyncio.create_task(r.run(asyncio.Event()))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert task in done and task.cancelled()


async def test_a_commit_too_large_for_kafka_is_parked_and_reported_not_retried_forever() -> None:
    store, publisher = InMemoryEventStore(), Recorder()
    s = stream_id("test")
    small = an_event(s, 0)
    huge = an_event(s, 1).model_copy(update={"payload": {**an_event(s, 1).payload, "reason": "X" * 1_000_000}})  # a bug: contracts bound every field
    after = an_event(s, 2)
    for version, event in enumerate((small, huge, after)):
        await store.append(s, version, [event], cause_id=new_id())
    r = relay(store, publisher)
    while await r.run_once():
        pass
    assert values(publisher.records) == [small.to_json(), after.to_json()]
    assert len(r.parked) == 1 and r.parked[0].startswith(s)
    assert await r.run_once() == 0 and len(publisher.records) == 2  # nothing tried again
    await r.settle()
    assert await store.pending_commits(older_than=0, limit=10) == []  # nor by another instance's recovery


class Refusing(Recorder):
    """A broker that refuses every publish until told otherwise (an ACL change, a broker away)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = True

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        if self.refusing:
            raise ConnectionError("not authorised")
        await super().publish(records)


async def until_true(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_relay_whose_rounds_keep_failing_says_for_how_long_and_health_reports_it() -> None:
    store, broker = InMemoryEventStore(), Refusing()
    service = Service("identity", ServiceSettings(stall_seconds=0.2), store=store, relay_publisher=broker)
    await service.start_store()
    await service.start_relay()
    try:
        s = stream_id("test")
        await store.append(s, 0, [an_event(s, 0)], cause_id=new_id())
        await until_true(lambda: service._relay is not None and service._relay.failing_for() > 0.3)  # noqa: SLF001
        reason = await service._check_relay()  # noqa: SLF001
        assert reason is not None and reason.startswith("relay rounds failing for") and "(ConnectionError)" in reason, reason
        broker.refusing = False
        await until_true(lambda: len(broker.records) == 1, seconds=15)
        await until_true(lambda: service._relay is not None and service._relay.failing_for() == 0)  # noqa: SLF001
        assert await service._check_relay() is None  # noqa: SLF001
    finally:
        await service.stop()
