"""The contract test suite every event store backend must pass.

Subclass :class:`EventStoreContract` in a test module and provide the fixtures ``store`` (a fresh,
empty store), ``tamper`` (``async (store, commit_id, mutate)``: change a stored commit document in
place behind the store's back) and ``remove`` (``async (store, commit_id)``: delete one), plus
``second_store`` (another store instance on the same data, as a second process would have).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo import monitoring

from jmo_contracts import Envelope, new_id, stream_id
from jmo_contracts.common import CommandRejected

from .model import ConcurrencyConflict
from .protocol import EventStore

Tamper = Callable[[Any, str, Callable[[dict[str, Any]], None]], Awaitable[None]]
Remove = Callable[[Any, str], Awaitable[None]]


class CommandLog(monitoring.CommandListener):
    """The commands a client sends (give it as one of the client's ``event_listeners``): for tests
    that count a store's round trips, or check what each one asks."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    @property
    def names(self) -> list[str]:
        """The name of each command sent, in order."""
        return [name for name, _ in self.commands]

    def of(self, name: str, collection: str) -> list[dict[str, Any]]:
        """The commands ``name`` (``find``, ``delete``...) sent to ``collection``, in order."""
        return [command for n, command in self.commands if n == name and command.get(name) == collection]

    def clear(self) -> None:
        self.commands.clear()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def an_event(stream: str, n: int = 0, correlation_id: str | None = None) -> Envelope:
    """A real contract event, numbered through its reason text so order can be checked."""
    body = CommandRejected(service="test", command_type="Test", command_id=new_id(), reason_code="TEST", reason=f"event {n}")
    return Envelope.wrap(body, stream_id=stream, correlation_id=correlation_id or new_id(), causation_id=new_id())


def numbers(events: list[Any]) -> list[int]:
    return [int(e.envelope.payload["reason"].split()[1]) for e in events]


async def read_everything(store: EventStore, after: int = 0) -> list[Any]:
    out: list[Any] = []
    while batch := await store.read_all(after, limit=97):
        out.extend(batch)
        after = batch[-1].position
    return out


@pytest.mark.usefixtures("store")
class EventStoreContract:
    """Behaviour every backend shares. Test names read as sentences."""

    async def test_a_new_stream_reads_back_its_events_in_order_with_versions(self, store: EventStore) -> None:
        s = stream_id("test")
        result = await store.append(s, 0, [an_event(s, 1), an_event(s, 2)], cause_id=new_id())
        assert (result.from_version, result.to_version, result.already_applied) == (1, 2, False)
        await store.append(s, 2, [an_event(s, 3)], cause_id=new_id())
        events = await store.read_stream(s)
        assert numbers(events) == [1, 2, 3]
        assert [e.stream_version for e in events] == [1, 2, 3]
        assert numbers(await store.read_stream(s, from_version=3)) == [3]

    async def test_the_envelope_comes_back_exactly_as_appended(self, store: EventStore) -> None:
        s = stream_id("test")
        sent = an_event(s, 1)
        await store.append(s, 0, [sent], cause_id=new_id())
        [got] = await store.read_stream(s)
        assert got.envelope == sent

    async def test_an_append_with_a_stale_expected_version_is_a_conflict(self, store: EventStore) -> None:
        s = stream_id("test")
        await store.append(s, 0, [an_event(s, 1), an_event(s, 2)], cause_id=new_id())
        for wrong in (0, 1, 3):
            with pytest.raises(ConcurrencyConflict):
                await store.append(s, wrong, [an_event(s, 9)], cause_id=new_id())
        assert numbers(await store.read_stream(s)) == [1, 2]

    async def test_of_concurrent_appends_at_one_version_exactly_one_wins(self, store: EventStore, second_store: EventStore) -> None:
        s = stream_id("test")
        await store.append(s, 0, [an_event(s, 0)], cause_id=new_id())
        await second_store.read_stream(s)
        stores = [store, second_store] * 5
        outcomes = await asyncio.gather(*(st.append(s, 1, [an_event(s, i)], cause_id=new_id()) for i, st in enumerate(stores)), return_exceptions=True)
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(winners) == 1
        assert all(isinstance(o, ConcurrencyConflict) for o in outcomes if isinstance(o, BaseException))
        assert len(await store.read_stream(s)) == 2

    async def test_appending_the_same_cause_twice_changes_nothing(self, store: EventStore) -> None:
        s = stream_id("test")
        cause = new_id()
        first = await store.append(s, 0, [an_event(s, 1)], cause_id=cause)
        again = await store.append(s, 0, [an_event(s, 1)], cause_id=cause)
        assert again.already_applied and again.message_ids == first.message_ids
        await store.append(s, 1, [an_event(s, 2)], cause_id=new_id())
        late = await store.append(s, 2, [an_event(s, 3)], cause_id=cause)  # redelivered after the stream moved on
        assert late.already_applied and late.to_version == 1
        assert numbers(await store.read_stream(s)) == [1, 2]
        assert (await store.find_cause(cause)).commit_id == first.commit_id

    async def test_read_all_gives_every_sequenced_event_once_in_position_order(self, store: EventStore) -> None:
        streams = [stream_id("test") for _ in range(5)]
        for round_ in range(4):
            for i, s in enumerate(streams):
                await store.append(s, round_ * 2, [an_event(s, round_ * 2 + 1), an_event(s, round_ * 2 + 2)], cause_id=new_id())
            await store.sequence(max_commits=3)
        while await store.sequence():
            pass
        everything = await read_everything(store)
        assert [e.position for e in everything] == list(range(1, 41))
        for s in streams:
            assert [e.stream_version for e in everything if e.stream_id == s] == list(range(1, 9))
        assert [e.position for e in await store.read_all(after_position=38)] == [39, 40]

    async def test_an_event_that_commits_late_is_read_after_the_reader_moved_on(self, store: EventStore) -> None:
        a, b = stream_id("test"), stream_id("test")
        await store.append(a, 0, [an_event(a, 1)], cause_id=new_id())
        await store.sequence()
        seen = await read_everything(store)
        checkpoint = seen[-1].position
        await store.append(b, 0, [an_event(b, 2)], cause_id=new_id())  # committed after the reader's pass
        await store.sequence()
        later = await read_everything(store, checkpoint)
        assert [e.stream_id for e in later] == [b]

    async def test_concurrent_writers_and_sequencers_never_make_a_reader_skip_an_event(self, store: EventStore, second_store: EventStore) -> None:
        streams = [stream_id("test") for _ in range(6)]
        total = 120
        written = 0
        done = asyncio.Event()
        seen: list[Any] = []

        async def writer(st: EventStore, offset: int) -> None:
            nonlocal written
            for i in range(total // 2):
                s = streams[(i + offset) % len(streams)]
                while True:
                    version = len(await st.read_stream(s))
                    try:
                        await st.append(s, version, [an_event(s, offset * 1000 + i)], cause_id=new_id())
                        break
                    except ConcurrencyConflict:
                        await asyncio.sleep(random.random() / 100)
                written += 1
                await asyncio.sleep(0)

        async def sequencer(st: EventStore) -> None:
            while len(seen) < total:  # keep sequencing until the reader has everything
                await st.sequence(max_commits=7)
                await asyncio.sleep(0.001)

        async def reader() -> None:
            after = 0
            while not done.is_set() or len(seen) < total:
                batch = await store.read_all(after, limit=10)
                if batch:
                    seen.extend(batch)
                    after = batch[-1].position
                else:
                    await asyncio.sleep(0.002)

        tasks = [asyncio.create_task(t) for t in (sequencer(store), sequencer(second_store), reader())]
        await asyncio.gather(writer(store, 0), writer(second_store, 1))
        done.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        ids = [e.envelope.message_id for e in seen]
        assert len(ids) == total and len(set(ids)) == total
        assert [e.position for e in seen] == list(range(1, total + 1))
        for s in streams:
            assert [e.stream_version for e in seen if e.stream_id == s] == list(range(1, len(await store.read_stream(s)) + 1))

    async def test_a_redelivered_cause_is_recognised_after_the_stream_moved_on_elsewhere(self, store: EventStore, second_store: EventStore) -> None:
        s = stream_id("test")
        cause = new_id()
        await store.append(s, 0, [an_event(s, 1)], cause_id=cause)
        await store.read_stream(s, cached=True)
        await second_store.read_stream(s)
        await second_store.append(s, 1, [an_event(s, 2)], cause_id=new_id())  # the first store's view is now stale
        again = await store.append(s, 1, [an_event(s, 1)], cause_id=cause)
        assert again.already_applied and again.to_version == 1
        with pytest.raises(ConcurrencyConflict):
            await store.append(s, 1, [an_event(s, 3)], cause_id=new_id())
        assert numbers(await store.read_stream(s, cached=True)) == [1, 2]  # the conflict brought the view up to date

    async def test_a_cause_used_on_one_stream_is_not_applied_to_another(self, store: EventStore) -> None:
        a, b = stream_id("test"), stream_id("test")
        cause = new_id()
        first = await store.append(a, 0, [an_event(a, 1)], cause_id=cause)
        again = await store.append(b, 0, [an_event(b, 1)], cause_id=cause)
        assert again.already_applied and again.commit_id == first.commit_id
        assert await store.read_stream(b) == []

    async def test_the_digest_of_a_cause_comes_back_when_the_cause_is_seen_again(self, store: EventStore, second_store: EventStore) -> None:
        a, b = stream_id("test"), stream_id("test")
        cause = new_id()
        assert (await store.append(a, 0, [an_event(a, 1)], cause_id=cause, cause_digest="d1")).cause_digest == "d1"
        assert (await store.append(a, 0, [an_event(a, 1)], cause_id=cause, cause_digest="d2")).cause_digest == "d1"  # same stream
        assert (await second_store.append(b, 0, [an_event(b, 1)], cause_id=cause, cause_digest="d3")).cause_digest == "d1"  # another stream, another instance

    async def test_every_append_is_pending_until_settled_and_handed_out_once(self, store: EventStore) -> None:
        s = stream_id("test")
        first = await store.append(s, 0, [an_event(s, 1), an_event(s, 2)], cause_id=new_id())
        cause = new_id()
        second = await store.append(s, 2, [an_event(s, 3)], cause_id=cause)
        await store.append(s, 2, [an_event(s, 3)], cause_id=cause)  # a redelivery: nothing new to publish
        handed = await store.appended_commits(10)
        assert [c.commit_id for c in handed] == [first.commit_id, second.commit_id]
        assert [numbers(list(c.events)) for c in handed] == [[1, 2], [3]]
        assert handed[1].prev_commit == first.commit_id and handed[0].prev_commit is None
        assert await store.appended_commits(10) == []
        assert (await store.pending_commit(second.commit_id)).events[0].envelope == handed[1].events[0].envelope
        await store.settle([first.commit_id])
        assert await store.pending_commit(first.commit_id) is None
        assert await store.pending_commit(second.commit_id) is not None
        await store.settle([second.commit_id])
        assert await store.pending_commit(second.commit_id) is None

    async def test_what_a_silent_instance_left_pending_is_found_by_another_and_settled_once(self, store: EventStore, second_store: EventStore) -> None:
        s, t = stream_id("test"), stream_id("test")
        a = await store.append(s, 0, [an_event(s, 1)], cause_id=new_id())
        b = await store.append(t, 0, [an_event(t, 2)], cause_id=new_id())
        c = await store.append(s, 1, [an_event(s, 3)], cause_id=new_id())
        await store.settle([b.commit_id])  # published; the others never were: then the instance died
        await asyncio.sleep(0.05)
        assert await second_store.pending_commits(older_than=3600, limit=10) == []
        found = await second_store.pending_commits(older_than=0.01, limit=10)
        ids = [x.commit_id for x in found]  # at least these (a settled one may come again: at least once)
        assert {a.commit_id, c.commit_id} <= set(ids) and ids.index(a.commit_id) < ids.index(c.commit_id)
        assert numbers(list(found[ids.index(c.commit_id)].events)) == [3]
        await second_store.settle([x.commit_id for x in found])
        await asyncio.sleep(0.05)
        assert await second_store.pending_commits(older_than=0.01, limit=10) == []
        assert await second_store.pending_commit(a.commit_id) is None

    async def test_side_documents_are_kept_with_their_decision_until_dropped_and_are_never_taken_for_commits(self, store: EventStore, second_store: EventStore) -> None:
        s, t = stream_id("test"), stream_id("test")
        first = await store.append(s, 0, [an_event(s, 1)], cause_id=new_id(), beside={"a1": {"sealed": "x1", "n": 1}, "a2": {"sealed": "x2", "n": 2}})
        await store.append(t, 0, [an_event(t, 2)], cause_id=new_id(), beside={"b1": {"sealed": "y1"}})  # the unique cause index keeps them all
        second = await store.append(s, 1, [an_event(s, 3)], cause_id=new_id(), beside={"a3": {"sealed": "x3"}})
        assert [await store.find_beside(k) for k in ("a1", "a2", "b1", "a3")] == [{"sealed": "x1", "n": 1}, {"sealed": "x2", "n": 2}, {"sealed": "y1"}, {"sealed": "x3"}]
        assert await second_store.find_beside("a1") == {"sealed": "x1", "n": 1}  # durable, not this instance's memory
        # whatever reads the log sees the commits only
        assert await store.stream_ids() == sorted([s, t])
        assert numbers(await store.read_stream(s)) == [1, 3]
        assert [c.commit_id for c in await store.appended_commits(10)] == [first.commit_id, f"{t}@0", second.commit_id]
        await asyncio.sleep(0.05)
        assert {c.commit_id for c in await second_store.pending_commits(older_than=0.01, limit=10)} <= {first.commit_id, f"{t}@0", second.commit_id}
        assert await store.sequence() == 3
        assert sorted(numbers(await read_everything(store))) == [1, 2, 3]
        checked: list[int] = []
        assert await store.verify(progress=checked.append) == [] and sum(checked) == 3
        await store.drop_beside(["a1", "b1", "never-kept"])
        assert [await store.find_beside(k) for k in ("a1", "a2", "b1", "a3")] == [None, {"sealed": "x2", "n": 2}, None, {"sealed": "x3"}]

    async def test_no_side_document_is_kept_for_a_decision_that_is_not_written(self, store: EventStore, second_store: EventStore) -> None:
        s, other = stream_id("test"), stream_id("test")
        cause = new_id()
        await store.append(s, 0, [an_event(s, 1)], cause_id=cause)
        assert (await store.append(s, 0, [an_event(s, 1)], cause_id=cause, beside={"again": {"v": 1}})).already_applied  # a redelivery
        assert (await second_store.append(other, 0, [an_event(other, 1)], cause_id=cause, beside={"elsewhere": {"v": 2}})).already_applied  # its cause taken by another stream
        with pytest.raises(ConcurrencyConflict):
            await second_store.append(s, 0, [an_event(s, 2)], cause_id=new_id(), beside={"late": {"v": 3}})  # the version taken (presumed new there)
        with pytest.raises(ConcurrencyConflict):
            await store.append(s, 0, [an_event(s, 2)], cause_id=new_id(), beside={"stale": {"v": 4}})
        assert [await store.find_beside(k) for k in ("again", "elsewhere", "late", "stale")] == [None] * 4
        retried = await second_store.append(s, 1, [an_event(s, 2)], cause_id=new_id(), beside={"late": {"v": 3}})  # the same decision again, now on what the stream holds
        assert not retried.already_applied and await store.find_beside("late") == {"v": 3}

    async def test_a_side_document_may_not_set_what_the_store_sets(self, store: EventStore) -> None:
        s = stream_id("test")
        for reserved in ("_id", "cause_id", "stream_id"):
            with pytest.raises(ValueError, match=reserved):
                await store.append(s, 0, [an_event(s, 1)], cause_id=new_id(), beside={"k": {reserved: "mine"}})
        assert await store.read_stream(s) == [] and await store.find_beside("k") is None

    async def test_verify_finds_nothing_wrong_in_an_untouched_log(self, store: EventStore) -> None:
        await _two_streams(store)
        assert await store.verify() == []

    async def test_verify_names_the_stream_whose_payload_was_altered(self, store: EventStore, tamper: Tamper) -> None:
        a, b = await _two_streams(store)
        commit = (await store.read_stream(a))[2].commit_id

        def change(doc: dict[str, Any]) -> None:
            doc["events"][0]["payload"]["reason"] = "event 666"

        await tamper(store, commit, change)
        problems = await store.verify()
        assert {p.stream_id for p in problems} == {a}
        assert any(p.commit_id == commit for p in problems)

    async def test_verify_finds_a_removed_commit(self, store: EventStore, remove: Remove) -> None:
        a, b = await _two_streams(store)
        middle = (await store.read_stream(b))[1].commit_id
        await remove(store, middle)
        assert {p.stream_id for p in await store.verify()} == {b}

    async def test_verify_finds_a_removed_last_commit_once_it_was_sequenced(self, store: EventStore, remove: Remove) -> None:
        a, b = await _two_streams(store)
        await store.sequence()
        last = (await store.read_stream(a))[-1].commit_id
        await remove(store, last)
        assert {p.stream_id for p in await store.verify()} == {a}

    async def test_verify_finds_commits_whose_contents_were_swapped(self, store: EventStore, tamper: Tamper) -> None:
        a, _ = await _two_streams(store)
        first, second = [e.commit_id for e in (await store.read_stream(a))[:2]]
        saved: dict[str, Any] = {}
        await tamper(store, first, lambda d: saved.update(events=d["events"]))
        await tamper(store, second, lambda d: saved.update(events2=d["events"]))

        def put(key: str) -> Callable[[dict[str, Any]], None]:
            return lambda d: d.update(events=[{**e, "message_id": e["message_id"]} for e in saved[key]])

        await tamper(store, first, put("events2"))
        await tamper(store, second, put("events"))
        assert {p.stream_id for p in await store.verify()} == {a}

    async def test_verify_reports_every_commit_it_checked(self, store: EventStore, tamper: Tamper) -> None:
        a, _ = await _two_streams(store)
        commit = (await store.read_stream(a))[1].commit_id
        await tamper(store, commit, lambda d: d["events"][0]["payload"].update(reason="event 666"))
        checked: list[int] = []
        problems = await store.verify(progress=checked.append)
        assert sum(checked) == 6
        assert [(p.stream_id, p.commit_id) for p in problems] == [(a, commit)]


async def _two_streams(store: EventStore) -> tuple[str, str]:
    a, b = stream_id("test"), stream_id("test")
    for v in range(3):
        await store.append(a, v, [an_event(a, v)], cause_id=new_id())
        await store.append(b, v, [an_event(b, v)], cause_id=new_id())
    return a, b
