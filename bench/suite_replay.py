"""Full replay: ``read_all`` in pages against a raw cursor scan; plus what ``sequence()`` costs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pymongo import ASCENDING

from jmo_eventstore import MongoEventStore

from context import Bench
from harness import Metric, Sample, Stopwatch, Trial, compare, measure
from workload import appends, commit_documents, event_count

#: The sequenced log that replay and the relay read: 100 commits of 10 events.
LOG = {"streams": 50, "commits_per_stream": 2, "events_per_commit": 10}
PAGE = 200
SEQUENCE = {"streams": 40, "commits_per_stream": 1, "events_per_commit": 5}
#: Already-sequenced commits under the pending ones, for the "on a log" variant of sequence().
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
    """Append :data:`LOG` through the store, then ``while await store.sequence(): pass``."""
    store = await bench.fresh_store("log")
    plan = appends(**LOG)
    for a in plan:
        await store.append(a.stream_id, a.expected_version, a.events, cause_id=a.cause_id)
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
    """One cursor over the commits collection sorted by ``last_position``; BSON to dict, nothing more."""

    async def trial(round_no: int) -> Sample:
        seen = 0
        async with Stopwatch() as sw:
            async for doc in log.store.commits.find({}).sort("last_position", ASCENDING):
                seen += doc["event_count"]
        assert seen == log.events, (seen, log.events)
        return Sample(seen, sw.seconds)

    return trial


async def _insert(store: MongoEventStore, docs: list[dict]) -> None:
    for i in range(0, len(docs), INSERT_CHUNK):
        await store.commits.insert_many(docs[i : i + INSERT_CHUNK])


def _already_sequenced(docs: list[dict]) -> list[dict]:
    """``docs`` as they look once sequenced (positions far above the pending ones; only size matters)."""
    out, position = [], 10**9
    for d in docs:
        done = {k: v for k, v in d.items() if k != "pending"}
        done.update(position=position, last_position=position + d["event_count"] - 1)
        position += d["event_count"]
        out.append(done)
    return out


def sequence_trial(bench: Bench, *, under: dict[str, int] | None) -> Trial:
    """``while await store.sequence(): pass`` over :data:`SEQUENCE` pending commits (inserted raw)."""

    async def trial(round_no: int) -> Sample:
        store = await bench.fresh_store("sequence")
        if under:
            await _insert(store, _already_sequenced(commit_documents(appends(**under))))
        pending = commit_documents(appends(**SEQUENCE))
        await _insert(store, pending)
        async with Stopwatch() as sw:
            done = 0
            while n := await store.sequence():
                done += n
        await bench.drop(store)
        assert done == len(pending), (done, len(pending))
        return Sample(done, sw.seconds)

    return trial


async def run(bench: Bench, log: Log) -> list[Metric]:
    pending = SEQUENCE["streams"] * SEQUENCE["commits_per_stream"]
    under = SEQUENCE_UNDER["streams"] * SEQUENCE_UNDER["commits_per_stream"]
    return [
        await compare(
            "replay", f"replay, read_all pages of {PAGE}", "events/s",
            read_all_trial(log), raw_scan_trial(log),
            baseline_is="one raw find() cursor over the same commits collection sorted by last_position, no decoding beyond BSON->dict",
            sizes={**LOG, "events": log.events, "commits": log.commits, "page": PAGE},
        ),
        await measure(
            "sequence_empty", f"sequence(), {pending} pending commits, empty log", "commits/s",
            sequence_trial(bench, under=None),
            sizes={**SEQUENCE, "pending_commits": pending, "sequenced_commits_below": 0},
            note="no baseline; the pending commits are inserted raw before timing",
        ),
        await measure(
            "sequence_on_log", f"sequence(), {pending} pending commits on a {under}-commit log", "commits/s",
            sequence_trial(bench, under=SEQUENCE_UNDER),
            sizes={**SEQUENCE, "pending_commits": pending, "sequenced_commits_below": under},
            note="no baseline; same as sequence_empty but with already-sequenced commits in the collection",
        ),
    ]
