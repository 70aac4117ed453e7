"""Batched writes (:mod:`jmo_runtime.batching`): many items, few writes, nothing lost on a clean stop."""

from __future__ import annotations

import asyncio

import pytest

from jmo_runtime.batching import Batched

pytestmark = pytest.mark.unit

HOUR = 3600.0  # an interval no test waits for: only the count, a close or an explicit flush writes


class Writes:
    def __init__(self, fail: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.written = asyncio.Event()

    async def __call__(self, items: list[int]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("store unavailable")
        self.batches.append(items)
        self.written.set()


async def settle() -> None:
    """Let every ready task run (a flush started now would have written by then)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_items_are_written_at_once_when_max_pending_wait_and_in_one_batch() -> None:
    writes = Writes()
    batched = Batched(writes, interval=HOUR, max_pending=64, name="t")
    batched.add(range(63))
    await settle()
    assert writes.batches == [] and batched.waiting(0) and batched.waiting(62)
    batched.add([63])
    await writes.written.wait()
    assert writes.batches == [list(range(64))] and not batched.waiting(0)
    await batched.close()


async def test_the_timer_writes_what_waits_without_a_close() -> None:
    writes = Writes()
    batched = Batched(writes, interval=0.01, max_pending=64, name="t")
    batched.add([1, 2])
    batched.add([2, 3])  # once each
    await batched.flusher.idle()  # the loop ends once nothing waits
    assert writes.batches == [[1, 2, 3]]


async def test_close_writes_what_waits() -> None:
    writes = Writes()
    batched = Batched(writes, interval=HOUR, name="t")
    batched.add([7, 8])
    await batched.close()
    assert writes.batches == [[7, 8]] and not batched.waiting(7)


async def test_a_failed_write_keeps_its_batch_for_the_next_flush() -> None:
    writes = Writes(fail=1)
    batched = Batched(writes, interval=HOUR, name="t")
    batched.add([1, 2])
    await batched.flush()
    assert writes.batches == [] and batched.waiting(1) and batched.waiting(2)
    batched.add([3])
    await batched.close()
    assert writes.batches == [[1, 2, 3]]


async def test_an_item_is_waiting_while_its_batch_is_being_written() -> None:
    seen: list[bool] = []
    batched: Batched[int]

    async def write(items: list[int]) -> None:
        seen.append(batched.waiting(items[0]))

    batched = Batched(write, interval=HOUR, name="t")
    batched.add([5])
    await batched.flush()
    assert seen == [True] and not batched.waiting(5)
