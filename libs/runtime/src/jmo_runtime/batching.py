"""Writing in batches what would otherwise be one store or broker request per message.

A :class:`Flusher` calls its owner's ``flush`` every ``interval`` seconds while anything waits, at
once when ``max_pending`` things wait, and a last time on :meth:`Flusher.close` (a clean stop). Its
loop runs only while something waits, so an idle service has no timer running. The owner keeps
what waits and decides what a flush does and what a failed one keeps for the next:
:class:`~jmo_runtime.offsets.OffsetCommitter` (consumed offsets, one OffsetCommit per consumer) and
:class:`Batched` (a list of items handed to one writing function) are built on it.

What batching costs is what a crash loses: at most the last ``interval``'s flush, so it is only
for writes whose loss a redelivery or an expiry makes good (see each owner).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Flusher:
    """Calls ``flush`` every ``interval`` seconds while ``waiting()`` is above zero, at once when it
    reaches ``max_pending``. Tell it with :meth:`added` each time something was added."""

    def __init__(self, flush: Callable[[], Awaitable[None]], waiting: Callable[[], int], *, interval: float, max_pending: int, name: str) -> None:
        self.interval = interval
        self.max_pending = max_pending
        self._flush = flush
        self._waiting = waiting
        self._name = name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def added(self) -> None:
        """Something was added: flush at once if ``max_pending`` wait, and start the loop if it is idle."""
        if self._waiting() >= self.max_pending:
            self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def idle(self) -> None:
        """Return once the loop has ended (nothing waits any more)."""
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        """Flush every interval (or sooner when many wait) while anything waits; then end."""
        while self._waiting():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self._flush()

    async def close(self, timeout: float) -> bool:
        """Flush what waits now and stop the loop; False when that flush did not end within
        ``timeout`` seconds (what waits is then left)."""
        try:
            await asyncio.wait_for(self._flush(), timeout)
            done = True
        except TimeoutError:
            done = False
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        return done


class Batched(Generic[T]):
    """Items handed over one at a time and written by ``write`` in batches (see :class:`Flusher`).

    An item stays :meth:`waiting` until ``write`` returned for its batch. A ``write`` that raises
    is logged and its batch kept for the next flush. Call :meth:`close` on stop.
    """

    def __init__(self, write: Callable[[list[T]], Awaitable[None]], *, interval: float, max_pending: int = 64, name: str) -> None:
        self._write = write
        self._pending: dict[T, None] = {}  # in the order handed over, once each
        self._writing: dict[T, None] = {}
        self._lock = asyncio.Lock()
        self._name = name
        self.flusher = Flusher(self.flush, lambda: len(self._pending), interval=interval, max_pending=max_pending, name=name)

    def add(self, items: Iterable[T]) -> None:
        """Write ``items`` with the next batch."""
        self._pending.update(dict.fromkeys(items))
        if self._pending:
            self.flusher.added()

    def waiting(self, item: T) -> bool:
        """Whether ``item`` was handed over and is not written yet."""
        return item in self._pending or item in self._writing

    async def flush(self) -> None:
        """Write what waits now. Never raises: a batch that fails waits for the next flush."""
        async with self._lock:
            if not self._pending:
                return
            self._writing, self._pending = self._pending, {}
            try:
                await self._write(list(self._writing))
            except BaseException as e:  # the store unavailable (or a stop cut the flush short): kept for the next
                self._pending = self._writing | self._pending
                if not isinstance(e, Exception):
                    raise
                log.warning("batch not written; tried again at the next flush", batch=self._name, items=len(self._writing), error=type(e).__name__)
            finally:
                self._writing = {}

    async def close(self, timeout: float = 5.0) -> None:
        """Write what waits (on a clean stop); what a store that does not answer within ``timeout``
        seconds leaves behind is logged."""
        if not await self.flusher.close(timeout) or self._pending:
            log.warning("batch left unwritten on stop", batch=self._name, items=len(self._pending))
