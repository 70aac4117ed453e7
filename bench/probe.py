"""Where the time goes: per-query latency against collection size, and per-step timing of a replay
and a relay pass. Reported under "other timings"; not ratios, not part of any aim.

Why collection size matters on FerretDB v1 (SQLite backend, v1.24): a query is pushed down to
SQLite only when its filter names ``_id`` as a string or ObjectId (with the JMO patches of
``jmo_devstack.install``: among other keys, or as ``$in`` of such values). Anything else
(``stream_id``, an integer ``_id`` as the sequence log uses) reads every row of the table and
filters the decoded documents in Go, stopping early only when a ``limit`` is reached.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import jmo_eventstore.mongo as mongo_module
import jmo_runtime.relay as relay_module
from jmo_eventstore import MongoEventStore
from jmo_runtime.kafka_security import credentials_from_options
from jmo_runtime.relay import KafkaRecordPublisher, Relay

from context import Bench
from suite_replay import INSERT_CHUNK, Log
from workload import appends, commit_documents

SIZES = (100, 1000, 3000)  # commits in the collection (5 events each)
REPEAT = 5
IDS = 50  # ids per $in query (a read_all page of ~200-500 events touches 20-100 commits)


async def _median_ms(op: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        await op()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


async def scaling(bench: Bench) -> dict[str, Any]:
    """Median latency (ms) of each query the store issues, on collections of growing size."""
    out: dict[str, Any] = {}
    for n in SIZES:
        store = await bench.fresh_store("scale")
        docs = commit_documents(appends(streams=n, commits_per_stream=1, events_per_commit=5))
        for i in range(0, len(docs), INSERT_CHUNK):
            await store.commits.insert_many(docs[i : i + INSERT_CHUNK])
        # a sequence log as a relay polling often leaves it: one batch per commit
        batches = [{"_id": i + 1, "end": i + 1, "commits": [{"commit": d["_id"], "position": i + 1, "count": 1}]} for i, d in enumerate(docs)]
        for i in range(0, len(batches), 200):
            await store.sequence_log.insert_many(batches[i : i + 200])
        mid = docs[len(docs) // 2]
        spread_ids = [d["_id"] for d in docs[:: max(len(docs) // IDS, 1)]][:IDS]
        extra = commit_documents(appends(streams=REPEAT, commits_per_stream=1, events_per_commit=5))
        fresh = iter(extra)
        row = {
            "insert_one (append)": await _median_ms(lambda: store.commits.insert_one(dict(next(fresh)))),
            "find_one {_id: str} (pushed down)": await _median_ms(lambda: store.commits.find_one({"_id": mid["_id"]})),
            f"find {{_id: $in {IDS} ids}} (read_all, predecessors)": await _median_ms(lambda: store.commits.find({"_id": {"$in": spread_ids}}).limit(len(spread_ids)).to_list()),
            "find {stream_id} (read_stream, head miss)": await _median_ms(lambda: store.commits.find({"stream_id": mid["stream_id"], "to_version": {"$gte": 1}}).to_list()),
            "find_one sequence {_id: int} miss (every catch-up)": await _median_ms(lambda: store.sequence_log.find_one({"_id": n + 10})),
            "find {} projected (reconcile scan)": await _median_ms(lambda: store.commits.find({}, mongo_module._ORDER_FIELDS).to_list()),
            "find {} (raw replay scan)": await _median_ms(lambda: store.commits.find({}).to_list()),
        }
        out[f"{n} commits"] = row
        await bench.drop(store)
    return out


class _Timer:
    """Accumulated wall time and call count per label; nested labels are counted inside their parent."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap_async(self, label: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start
                self.calls[label] += 1

        return wrapped

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start
                self.calls[label] += 1

        return wrapped

    def report(self, total: float) -> dict[str, str]:
        rows = {"total": f"{total * 1000:.1f} ms"}
        for label, s in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            rows[label] = f"{s * 1000:.1f} ms in {self.calls[label]} calls ({s / total:.0%})"
        return rows


def _instrument_store(t: _Timer, store: MongoEventStore) -> list[tuple[Any, str, Any]]:
    return [
        (store, "_catch_up", t.wrap_async("store: _catch_up (sequence log find_one, full scan each)", store._catch_up)),
        (store, "_fetch", t.wrap_async("store: _fetch (commits by _id $in)", store._fetch)),
        (store, "_reconcile", t.wrap_async("store: _reconcile (commits full scan)", store._reconcile)),
        (mongo_module, "recorded_events", t.wrap("store: recorded_events (decode + pydantic Envelope)", mongo_module.recorded_events)),
    ]


async def breakdown(bench: Bench, log: Log) -> dict[str, Any]:
    """One instrumented replay and one instrumented relay pass over the replay log."""
    out: dict[str, Any] = {}

    await _replay(log)  # warm
    t = _Timer()
    patches = _instrument_store(t, log.store)
    start = time.perf_counter()
    await _with(patches, lambda: _replay(log))
    out["replay (read_all pages of 200)"] = t.report(time.perf_counter() - start)

    publisher = KafkaRecordPublisher(bench.bootstrap, client_id="bench-probe", credentials=credentials_from_options(bench.kafka_options))
    await publisher.start()
    try:
        from suite_relay import appended

        pending = await appended(log)
        topic = await bench.fresh_topic("probe", 3)
        store = MongoEventStore(bench.db, log.store.commits.name.removesuffix("_commits"))
        store._queue.extend(pending)  # noqa: SLF001 (as if this instance had appended them)
        t = _Timer()
        relay = Relay(f"bench-probe-{topic}", store, publisher, lambda _type: topic, batch_size=500)
        patches = [
            (store, "appended_commits", t.wrap_async("relay: store.appended_commits (from memory)", store.appended_commits)),
            (store, "settle", t.wrap_async("relay: store.settle", store.settle)),
            (publisher, "publish", t.wrap_async("relay: publisher.publish (send + await acks)", publisher.publish)),
            (relay_module, "to_record", t.wrap("relay: to_record (Envelope.to_json + headers)", relay_module.to_record)),
        ]

        async def run() -> None:
            while relay.published < log.events:
                if not await relay.run_once():
                    raise RuntimeError("relay stopped early")

        start = time.perf_counter()
        await _with(patches, run)
        out["relay (batches of 500)"] = t.report(time.perf_counter() - start)
    finally:
        await publisher.stop()
    return out


async def _with(patches: list[tuple[Any, str, Any]], body: Callable[[], Awaitable[Any]]) -> None:
    olds = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, new in patches:
        setattr(obj, name, new)
    try:
        await body()
    finally:
        for obj, name, old in reversed(olds):
            if obj is mongo_module or obj is relay_module:
                setattr(obj, name, old)
            else:
                # instance attributes shadowing the class's methods: remove them
                try:
                    delattr(obj, name)
                except AttributeError:
                    setattr(obj, name, old)


async def _replay(log: Log) -> None:
    after = 0
    while page := await log.store.read_all(after, limit=200):
        after = page[-1].position
