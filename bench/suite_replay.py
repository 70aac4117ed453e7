"""Full replay: ``read_all`` in pages against a raw cursor scan; plus what ``sequence()`` costs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from jmo_eventstore import MongoEventStore

from context import Bench
from harness import Metric, Sample, Stopwatch, Trial, compare, measure
from workload import appends, commit_documents, event_count

#: The sequenced log that replay and the relay read: 100 commits of 10 events.
LOG = {"streams": 50, "commits_per_stream": 2, "events_per_commit": 10}
PAGE = 200
SEQUENCE = {"streams": 40, "commits_per_stream": 1, "events_per_commit": 5}
#: Already-sequenced commits under the unsequenced ones, for the "on a log" variants of sequence().
SEQUENCE_UNDER = {"streams": 100, "commits_per_stream": 2, "events_per_commit": 5}
INSERT_CHUNK = 50  # FerretDB v1 misbehaves on very large bulk writes; keep setup batches small


@dataclass
class Log:
    """A store holding :data:`LOG`, fully sequenced."""

    store: MongoEventStore
    events: int
    commits: int
    sequence_seconds: float


async def build_log(bench: Bench) -> Log:
    """Append :data:`LOG` through the store, then ``while await store.sequence(): pass`` (a batch
    tool's job: each call reconciles by scanning the commits)."""
    store = await bench.fresh_store("log")
    plan = appends(**LOG)
    for a in plan:
        await store.append(a.stream_id, a.expected_version, a.events, cause_id=a.cause_id)
    await store.settle([c.commit_id for c in await store.appended_commits(len(plan))])  # as its relay would: no outbox slot left
    start = time.perf_counter()
    while await store.sequence():
        pass
    return Log(store, event_count(plan), len(plan), time.perf_counter() - start)


def read_all_trial(log: Log) -> Trial:
    """Every event through ``read_all(after, limit=PAGE)``, decoded into RecordedEvent/Envelope."""

    async def trial(round_no: int) -> Sample:
        seen, after = 0, 0
        async with Stopwatch() as sw:
            while page := await log.store.read_all(after, limit=PAGE):
                seen += len(page)
                after = page[-1].position
        assert seen == log.events, (seen, log.events)
        return Sample(seen, sw.seconds)

    return trial


def raw_scan_trial(log: Log) -> Trial:
    """One cursor over the same commits collection, no filter, no sort: BSON to dict, nothing more.

    The insert-only store keeps no position in a commit, so there is nothing to sort on; the
    baseline is the floor of fetching the same bytes, which ``read_all`` must do at least once."""

    async def trial(round_no: int) -> Sample:
        seen = 0
        async with Stopwatch() as sw:
            async for doc in log.store.commits.find({}):
                seen += doc["event_count"]
        assert seen == log.events, (seen, log.events)
        return Sample(seen, sw.seconds)

    return trial


async def _insert(store: MongoEventStore, docs: list[dict]) -> None:
    for i in range(0, len(docs), INSERT_CHUNK):
        await store.commits.insert_many(docs[i : i + INSERT_CHUNK])


async def _append(store: MongoEventStore, plan: list) -> None:
    for a in plan:
        await store.append(a.stream_id, a.expected_version, a.events, cause_id=a.cause_id)


async def _drain(store: MongoEventStore) -> int:
    done = 0
    while n := await store.sequence():
        done += n
    return done


def sequence_trial(bench: Bench, *, under: dict[str, int] | None) -> Trial:
    """Steady state: the instance that appended :data:`SEQUENCE` sequences it (``while sequence()``).

    Untimed setup, on one store instance: an empty ``sequence()`` first (the start-up
    reconciliation scan, so it does not fall into the timed part), then ``under`` appended and
    sequenced, then the pending commits appended. Timed: only sequencing the pending commits."""

    async def trial(round_no: int) -> Sample:
        store = await bench.fresh_store("sequence")
        await store.sequence()  # start-up reconciliation of the empty collection
        if under:
            await _append(store, appends(**under))
            await _drain(store)
        plan = appends(**SEQUENCE)
        await _append(store, plan)
        async with Stopwatch() as sw:
            done = await _drain(store)
        await bench.drop(store)
        assert done == len(plan), (done, len(plan))
        return Sample(done, sw.seconds)

    return trial


def reconcile_trial(bench: Bench) -> Trial:
    """Start-up / take-over: a NEW instance finds :data:`SEQUENCE` commits another instance wrote
    but never sequenced, on top of :data:`SEQUENCE_UNDER` commits already sequenced.

    Timed: the new instance's ``while sequence()``: catching up with the sequence log, one
    reconciliation scan of every commit, the predecessor look-ups, and the batch insert."""

    async def trial(round_no: int) -> Sample:
        writer = await bench.fresh_store("reconcile")
        await writer.sequence()
        await _append(writer, appends(**SEQUENCE_UNDER))
        await _drain(writer)
        plan = appends(**SEQUENCE)
        await _insert(writer, commit_documents(plan))  # written, never sequenced (a crashed instance)
        newcomer = MongoEventStore(bench.db, writer.commits.name.removesuffix("_commits"))
        async with Stopwatch() as sw:
            done = await _drain(newcomer)
        await bench.drop(writer)
        assert done == len(plan), (done, len(plan))
        return Sample(done, sw.seconds)

    return trial


async def run(bench: Bench, log: Log) -> list[Metric]:
    pending = SEQUENCE["streams"] * SEQUENCE["commits_per_stream"]
    under = SEQUENCE_UNDER["streams"] * SEQUENCE_UNDER["commits_per_stream"]
    return [
        await compare(
            "replay", f"replay, read_all pages of {PAGE}", "events/s",
            read_all_trial(log), raw_scan_trial(log),
            baseline_is="one raw find({}) cursor over the same commits collection, no sort, no decoding beyond BSON->dict",
            sizes={**LOG, "events": log.events, "commits": log.commits, "page": PAGE},
        ),
        await measure(
            "sequence_empty", f"sequence(), {pending} own appends, empty log", "commits/s",
            sequence_trial(bench, under=None),
            sizes={**SEQUENCE, "pending_commits": pending, "sequenced_commits_below": 0},
            note="no baseline; appended through the same store instance before timing (the steady state of a service)",
        ),
        await measure(
            "sequence_on_log", f"sequence(), {pending} own appends on a {under}-commit log", "commits/s",
            sequence_trial(bench, under=SEQUENCE_UNDER),
            sizes={**SEQUENCE, "pending_commits": pending, "sequenced_commits_below": under},
            note="no baseline; as sequence_empty, with already-sequenced commits (appended and sequenced by the same instance) below",
        ),
        await measure(
            "sequence_reconcile", f"sequence() by a new instance, {pending} foreign commits on a {under}-commit log", "commits/s",
            reconcile_trial(bench),
            sizes={**SEQUENCE, "pending_commits": pending, "sequenced_commits_below": under},
            note="no baseline; the start-up path: catch-up + reconciliation scan + predecessor fetch; the foreign commits are inserted raw",
        ),
    ]
