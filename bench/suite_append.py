"""Append throughput: ``MongoEventStore.append`` against raw inserts of the very same commit documents."""

from __future__ import annotations

from jmo_eventstore import MongoEventStore

from context import Bench
from harness import Metric, Sample, Stopwatch, Trial, compare
from workload import Append, appends, commit_documents, event_count

SINGLE = {"streams": 50, "commits_per_stream": 6, "events_per_commit": 1}
BATCHED = {"streams": 25, "commits_per_stream": 2, "events_per_commit": 10}


class _Plans:
    """One plan per round, shared by subject and baseline of that round (fresh streams each round)."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self._plans: dict[int, tuple[list[Append], list[dict]]] = {}

    def __call__(self, round_no: int) -> tuple[list[Append], list[dict]]:
        if round_no not in self._plans:
            plan = appends(**self.sizes)
            self._plans[round_no] = (plan, commit_documents(plan))
        return self._plans[round_no]


def subject_trial(bench: Bench, plans: _Plans) -> Trial:
    """``store.append`` per commit, expected version from the loop (no read before)."""

    async def trial(round_no: int) -> Sample:
        plan, _ = plans(round_no)
        store = await bench.fresh_store("append_subject")
        async with Stopwatch() as sw:
            for a in plan:
                await store.append(a.stream_id, a.expected_version, a.events, cause_id=a.cause_id)
        await bench.drop(store)
        return Sample(event_count(plan), sw.seconds)

    return trial


def insert_one_trial(bench: Bench, plans: _Plans) -> Trial:
    """Raw ``insert_one`` of each prebuilt commit document into a collection with the store's indexes."""

    async def trial(round_no: int) -> Sample:
        plan, docs = plans(round_no)
        store = await bench.fresh_store("append_raw")
        async with Stopwatch() as sw:
            for doc in docs:
                await store.commits.insert_one(dict(doc))
        await bench.drop(store)
        return Sample(event_count(plan), sw.seconds)

    return trial


def insert_many_trial(bench: Bench, plans: _Plans) -> Trial:
    """Raw ``insert_many`` of all prebuilt commit documents in one call."""

    async def trial(round_no: int) -> Sample:
        plan, docs = plans(round_no)
        store = await bench.fresh_store("append_bulk")
        async with Stopwatch() as sw:
            await store.commits.insert_many([dict(d) for d in docs], ordered=True)
        await bench.drop(store)
        return Sample(event_count(plan), sw.seconds)

    return trial


async def run(bench: Bench) -> list[Metric]:
    single, batched = _Plans(SINGLE), _Plans(BATCHED)
    return [
        await compare(
            "append_single", "append, 1 event per commit", "events/s",
            subject_trial(bench, single), insert_one_trial(bench, single),
            baseline_is="raw insert_one of the same commit documents (exactly build_commit's output), one per append, into a collection with ensure_indexes' indexes",
            sizes={**SINGLE, "events": SINGLE["streams"] * SINGLE["commits_per_stream"]},
        ),
        await compare(
            "append_batched", "append, 10 events per commit", "events/s",
            subject_trial(bench, batched), insert_many_trial(bench, batched),
            baseline_is="raw insert_many of all the same commit documents in one call (one round trip for the whole set)",
            sizes={**BATCHED, "events": BATCHED["streams"] * BATCHED["commits_per_stream"] * BATCHED["events_per_commit"]},
        ),
        await compare(
            "append_batched_vs_insert_one", "append, 10 events per commit (reference)", "events/s",
            subject_trial(bench, batched), insert_one_trial(bench, batched),
            baseline_is="raw insert_one per commit document: what one write per decision costs, without the store",
            sizes={**BATCHED, "events": BATCHED["streams"] * BATCHED["commits_per_stream"] * BATCHED["events_per_commit"]},
            note="extra row, not asked for: separates the per-decision round trip from the store's own cost",
        ),
    ]
