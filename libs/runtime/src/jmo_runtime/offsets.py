"""Committing consumed offsets in batches instead of once per message.

Committing after every message makes every consumed message of every group an OffsetCommit request
(a write to ``__consumer_offsets``): the broker's largest cost per registration. A subscriber
(:func:`jmo_runtime.messaging.subscribe`) instead tells an :class:`OffsetCommitter` which message
*finished* (handled, refused or parked: every path that used to end in an ack), and the committer
commits, per consumer, the offset after the last finished message of each partition, every
``interval`` seconds or as soon as ``max_pending`` partitions wait.

Delivery is not weakened: the subscriber reports a message finished only once every message
before it in its partition finished too (a batch's streams are handled side by side, so they may
finish out of order), so the committed offset never passes a message that is not finished; a
message whose handling raised is not reported (the subscriber seeks back to it), so it is delivered
again and nothing after it is committed before it finishes. What a crash loses is at most the last
uncommitted interval, delivered again to handlers that are idempotent by message id.

The timing (every interval while anything waits, at once when many wait, on close) is
:class:`jmo_runtime.batching.Flusher`, shared with the other batched writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from .batching import Flusher

log = structlog.get_logger(__name__)


@dataclass
class PendingOffsets:
    """Offsets finished but not yet committed, per consumer and partition. Pure bookkeeping.

    ``finished(consumer, tp, offset)`` records that the message at ``offset`` is done, so that
    ``offset + 1`` (Kafka's "next message to read") may be committed for ``tp`` by ``consumer``.
    """

    _pending: dict[Any, dict[TopicPartition, int]] = field(default_factory=dict)
    #: The offset after the last finished message of each partition, committed or not (for the lag watch).
    _done: dict[TopicPartition, int] = field(default_factory=dict)

    def finished(self, consumer: Any, tp: TopicPartition, offset: int) -> None:
        self._pending.setdefault(consumer, {})[tp] = offset + 1
        self._done[tp] = offset + 1

    def __len__(self) -> int:
        """How many partitions wait for a commit."""
        return sum(len(tps) for tps in self._pending.values())

    def take(self, only: set[TopicPartition] | None = None) -> dict[Any, dict[TopicPartition, int]]:
        """Remove and return what waits (of the partitions ``only``, when given), per consumer."""
        taken: dict[Any, dict[TopicPartition, int]] = {}
        for consumer, tps in list(self._pending.items()):
            mine = {tp: offset for tp, offset in tps.items() if only is None or tp in only}
            if not mine:
                continue
            taken[consumer] = mine
            for tp in mine:
                del tps[tp]
            if not tps:
                del self._pending[consumer]
        return taken

    def give_back(self, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        """Put back offsets whose commit failed and may be retried, unless a later one was recorded since."""
        tps = self._pending.setdefault(consumer, {})
        for tp, offset in offsets.items():
            if tps.get(tp, -1) < offset:
                tps[tp] = offset

    def forget(self, tps: set[TopicPartition]) -> None:
        """Drop what is known of partitions this process no longer owns."""
        self.take(only=tps)
        for tp in tps:
            self._done.pop(tp, None)

    def done(self, tp: TopicPartition) -> int | None:
        """The offset after the last message of ``tp`` this process finished, committed or not."""
        return self._done.get(tp)


class OffsetCommitter(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits the offsets of finished messages of one subscriber's consumers, in batches.

    Also its consumers' rebalance listener: before partitions are revoked, what is pending for
    them is committed (still possible then), so that their next owner does not handle again what
    was already handled here. Call :meth:`close` before the consumers stop, to commit the tail.
    """

    def __init__(self, interval: float = 0.2, max_pending: int = 64) -> None:
        self.pending = PendingOffsets()
        #: OffsetCommit requests made (one per consumer per flush with something to commit).
        self.commits = 0
        self._lock = asyncio.Lock()
        self.flusher = Flusher(self.flush, lambda: len(self.pending), interval=interval, max_pending=max_pending, name="offset-committer")

    def finished(self, consumer: Any, topic: str, partition: int, offset: int) -> None:
        """The message at ``offset`` of ``topic``/``partition`` is done (handled, refused or parked)."""
        self.pending.finished(consumer, TopicPartition(topic, partition), offset)
        self.flusher.added()

    def done(self, topic: str, partition: int) -> int | None:
        """The offset after the last finished message of ``topic``/``partition``, committed or not:
        the position the lag watch uses, since commits may be up to one interval behind."""
        return self.pending.done(TopicPartition(topic, partition))

    async def flush(self, only: set[TopicPartition] | None = None) -> None:
        """Commit what waits (of the partitions ``only``, when given). Never raises a Kafka error:
        a commit refused because the group is rebalancing is retried at the next flush for the
        partitions the consumer still owns; what a stopped consumer or another owner holds is dropped."""
        async with self._lock:  # one commit at a time: a late one must never move an offset back
            for consumer, offsets in self.pending.take(only).items():
                await self._commit(consumer, offsets)

    async def _commit(self, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        try:
            owned = consumer.assignment()
        except Exception:  # noqa: BLE001 (a consumer that stopped: its partitions are someone else's now)
            owned = set()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            self.commits += 1
            await consumer.commit(offsets)
        except CommitFailedError:
            log.info("offset commit refused during a rebalance; retried if the partitions stay here", partitions=len(offsets))
            self.pending.give_back(consumer, offsets)
        except IllegalStateError:
            log.info("offsets not committed: partitions no longer assigned (handled again by their owner)", partitions=len(offsets))
        except KafkaError as e:
            log.warning("offset commit failed; retried at the next flush", error=type(e).__name__)
            self.pending.give_back(consumer, offsets)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what waits for the partitions a consumer is losing, then forget them."""
        await self.flush(only=set(revoked))
        self.pending.forget(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: a partition starts from its group's committed offset."""

    async def close(self, timeout: float = 5.0) -> None:
        """Commit what waits now (on a clean stop, before the consumers stop); a broker that does
        not answer within ``timeout`` seconds leaves the tail to be delivered again."""
        if not await self.flusher.close(timeout):
            log.warning("offsets not committed on stop: the broker did not answer in time", partitions=len(self.pending))
