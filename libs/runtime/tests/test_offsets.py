"""What the offset committer commits: the offset after the last finished message of each
partition, per consumer, in one request per consumer; never past a message that did not finish."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from jmo_runtime.offsets import OffsetCommitter, PendingOffsets

pytestmark = pytest.mark.unit

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


class FakeConsumer:
    """Records commits; owns ``owned``; fails the next commit with ``fail`` when set."""

    def __init__(self, *owned: TopicPartition) -> None:
        self.owned = set(owned)
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail: Exception | None = None

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        self.commits.append(dict(offsets))


def test_the_offset_after_the_last_finished_message_of_each_partition_is_pending() -> None:
    pending, consumer = PendingOffsets(), object()
    for offset in range(5):
        pending.finished(consumer, A, offset)
    pending.finished(consumer, B, 7)
    assert len(pending) == 2 and pending.done(A) == 5
    assert pending.take() == {consumer: {A: 5, B: 8}}
    assert len(pending) == 0 and pending.take() == {} and pending.done(A) == 5  # done outlives the commit (the lag watch)


def test_a_failed_commit_given_back_never_replaces_a_later_finished_offset() -> None:
    pending, consumer = PendingOffsets(), object()
    pending.finished(consumer, A, 3)
    taken = pending.take()[consumer]
    pending.finished(consumer, A, 9)  # finished while the commit of 4 was on its way
    pending.give_back(consumer, taken)
    assert pending.take() == {consumer: {A: 10}}
    pending.give_back(consumer, {A: 4})
    assert pending.take() == {consumer: {A: 4}}


async def test_many_messages_make_one_commit_per_consumer_of_their_last_offsets() -> None:
    committer, one, two = OffsetCommitter(interval=60), FakeConsumer(A), FakeConsumer(B)
    for offset in range(100):
        committer.finished(one, "t", 0, offset)
    committer.finished(two, "t", 1, 41)
    await committer.close()
    assert one.commits == [{A: 100}] and two.commits == [{B: 42}] and committer.commits == 2
    await committer.flush()
    assert committer.commits == 2  # nothing pending, nothing sent


async def test_a_message_that_did_not_finish_is_never_committed_past() -> None:
    committer, consumer = OffsetCommitter(interval=60), FakeConsumer(A)
    committer.finished(consumer, "t", 0, 0)
    committer.finished(consumer, "t", 0, 1)
    # the message at offset 2 raised: the subscriber does not record it, and seeks back to it
    await committer.flush()
    committer.finished(consumer, "t", 0, 2)  # delivered again, and now handled
    await committer.close()
    assert consumer.commits == [{A: 2}, {A: 3}]


async def test_a_commit_refused_during_a_rebalance_is_retried_and_a_lost_partition_dropped() -> None:
    committer, consumer = OffsetCommitter(interval=60), FakeConsumer(A, B)
    committer.finished(consumer, "t", 0, 4)
    committer.finished(consumer, "t", 1, 6)
    consumer.fail = CommitFailedError("rebalancing")
    await committer.flush()
    assert consumer.commits == [] and len(committer.pending) == 2  # kept for the next flush
    consumer.owned = {A}  # B went to another member
    await committer.close()
    assert consumer.commits == [{A: 5}] and len(committer.pending) == 0


async def test_a_stopped_consumer_drops_its_offsets_and_the_committer_goes_on() -> None:
    committer, consumer = OffsetCommitter(interval=60), FakeConsumer(A)
    committer.finished(consumer, "t", 0, 1)
    consumer.fail = IllegalStateError("not subscribed")
    await committer.flush()
    assert len(committer.pending) == 0
    committer.finished(consumer, "t", 0, 2)
    await committer.close()
    assert consumer.commits == [{A: 3}]


async def test_revoked_partitions_are_committed_then_forgotten() -> None:
    committer, consumer = OffsetCommitter(interval=60), FakeConsumer(A, B)
    committer.finished(consumer, "t", 0, 4)
    committer.finished(consumer, "t", 1, 6)
    await committer.on_partitions_revoked({A})
    assert consumer.commits == [{A: 5}] and committer.done("t", 0) is None and committer.done("t", 1) == 7
    await committer.close()
    assert consumer.commits == [{A: 5}, {B: 7}]


async def test_the_timer_commits_without_a_close() -> None:
    committer, consumer = OffsetCommitter(interval=0.01), FakeConsumer(A)
    committer.finished(consumer, "t", 0, 0)
    await committer.flusher.idle()  # ends once nothing waits
    assert consumer.commits == [{A: 1}]
