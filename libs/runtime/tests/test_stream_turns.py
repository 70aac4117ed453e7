"""Per-stream turns of a consumer (``_OneStreamAtATime``): one chain of a stream at a time, in the
order they asked, other streams unhindered, and a waiter cancelled (the loop closing) never lets
those after it overtake the one still in hand."""

from __future__ import annotations

import asyncio

import pytest

from jmo_runtime.messaging import _OneStreamAtATime

pytestmark = pytest.mark.unit


async def _chain(turns: _OneStreamAtATime, key: str, name: str, log: list[str], release: asyncio.Event) -> None:
    async with turns.turn(key):
        log.append(f"{name} in")
        await release.wait()
        log.append(f"{name} out")


async def test_chains_of_one_stream_take_turns_in_order_and_other_streams_do_not_wait() -> None:
    turns, log = _OneStreamAtATime(), []
    first, second, other = asyncio.Event(), asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(_chain(turns, "a", "a1", log, first)), asyncio.create_task(_chain(turns, "a", "a2", log, second)),
             asyncio.create_task(_chain(turns, "b", "b1", log, other))]
    await asyncio.sleep(0.01)
    assert log == ["a1 in", "b1 in"]  # a2 waits for a1; b1 does not
    second.set()
    await asyncio.sleep(0.01)
    assert "a2 in" not in log  # released, but still not before a1 is over
    first.set()
    other.set()
    await asyncio.gather(*tasks)
    assert log.index("a1 out") < log.index("a2 in")


async def test_a_cancelled_waiter_does_not_let_the_next_overtake_the_one_in_hand() -> None:
    turns, log = _OneStreamAtATime(), []
    first, rest = asyncio.Event(), asyncio.Event()
    rest.set()
    a1 = asyncio.create_task(_chain(turns, "a", "a1", log, first))
    a2 = asyncio.create_task(_chain(turns, "a", "a2", log, rest))
    await asyncio.sleep(0.01)
    a2.cancel()
    a3 = asyncio.create_task(_chain(turns, "a", "a3", log, rest))
    await asyncio.sleep(0.01)
    assert log == ["a1 in"]  # a3 waits for a1 although a2, between them, was cancelled
    first.set()
    await asyncio.gather(a1, a3)
    assert log == ["a1 in", "a1 out", "a3 in", "a3 out"]
    a4 = asyncio.create_task(_chain(turns, "a", "a4", log, rest))  # and once all are over, the next goes at once
    await asyncio.wait_for(a4, 1)
