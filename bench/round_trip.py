"""What one store round trip costs, apart from what it does: the floor under every service's CPU.

Each of the 18 store commands of a registration (see bench/load.py) is an ``_id``-keyed
``find_one``, ``insert_one`` or ``update_one``. This runs each alone, sequentially, against an
embedded FerretDB started for the run, with PyMongo's async client on uvloop as the services use
them, and prints per operation: the client's CPU (this process), the server's CPU (FerretDB's
``/proc/<pid>/stat``) and the wall time; and, beside them, inserts five to a round trip, per
document (what handling messages in batches would pay), and deletes of fifty ``_id``s as one
``$in`` statement or one statement each, per document. Figures are reported, never asserted.

    .venv/bin/python bench/round_trip.py [--ops 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from pymongo import AsyncMongoClient, DeleteOne
from pymongo.asynchronous.collection import AsyncCollection

from jmo_devstack.ferretdb import FerretDBServer
from jmo_devstack.net import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import cpu_seconds  # noqa: E402  (bench/ is not a package)

Operation = Callable[[AsyncCollection, int], Awaitable[object]]

OPERATIONS: dict[str, Operation] = {
    "find_one by _id": lambda c, i: c.find_one({"_id": "known"}),
    "insert_one": lambda c, i: c.insert_one({"_id": f"new-{i}", "n": 1}),
    "update_one $inc by _id": lambda c, i: c.update_one({"_id": "known"}, {"$inc": {"n": 1}}),
}
#: The same inserts, BATCH to a round trip: what handling messages in batches would pay per document.
BATCH = 5
BATCHED = {f"insert_many of {BATCH}, per doc": lambda c, i: c.insert_many([{"_id": f"batch-{i}-{k}", "n": 1} for k in range(BATCH)])}


class Tally:
    """Client CPU, server CPU and wall time per document of each named operation, one sample per
    round; :meth:`medians` over the rounds."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.samples: dict[str, dict[str, list[float]]] = {}

    def now(self) -> tuple[float, float, float]:
        return time.process_time(), cpu_seconds(self.server_pid), time.perf_counter()

    def add(self, name: str, spent: tuple[float, float, float], documents: int) -> None:
        per_doc = 1e6 / documents
        sample = self.samples.setdefault(name, {"client_us": [], "server_us": [], "wall_us": []})
        for key, seconds in zip(("client_us", "server_us", "wall_us"), spent):
            sample[key].append(seconds * per_doc)

    def medians(self) -> dict[str, dict[str, float]]:
        return {name: {k: statistics.median(v) for k, v in figures.items()} for name, figures in self.samples.items()}


def since(start: tuple[float, float, float], tally: Tally) -> tuple[float, float, float]:
    return tuple(b - a for a, b in zip(start, tally.now()))  # type: ignore[return-value]


async def measure(uri: str, tally: Tally, ops: int, rounds: int) -> None:
    client: AsyncMongoClient = AsyncMongoClient(uri)
    try:
        for round_no in range(rounds):
            collection = client["jmo_round_trip"][f"round{round_no}"]
            await collection.insert_one({"_id": "known", "n": 0})
            for _ in range(200):  # warm the connection pool and the server's caches
                await collection.find_one({"_id": "known"})
            for name, operation in (OPERATIONS | BATCHED).items():
                calls = ops if name in OPERATIONS else ops // BATCH
                start = tally.now()
                for i in range(calls):
                    await operation(collection, i)
                tally.add(name, since(start, tally), ops)
            await collection.drop()
    finally:
        await client.close()


#: Documents per delete of :func:`measure_deletes` (what a relay's settle deletes at ~50 registrations/s).
DELETED = 50


async def measure_deletes(uri: str, tally: Tally, rounds: int, repeats: int = 40) -> None:
    """Deleting :data:`DELETED` documents by ``_id``, per document: one ``_id: {$in}`` statement
    (what :func:`jmo_eventstore.delete_by_id` sends) against one statement per ``_id``."""
    client: AsyncMongoClient = AsyncMongoClient(uri)
    ways: dict[str, Callable[[AsyncCollection, list[str]], Awaitable[object]]] = {
        f"delete {DELETED} by _id $in, per doc": lambda c, ids: c.delete_many({"_id": {"$in": ids}}),
        f"delete {DELETED}, a statement each, per doc": lambda c, ids: c.bulk_write([DeleteOne({"_id": i}) for i in ids], ordered=False),
    }
    try:
        collection = client["jmo_round_trip"]["deletes"]
        for round_no in range(rounds):
            for name, delete in ways.items():
                spent = [0.0, 0.0, 0.0]
                for repeat in range(repeats):
                    ids = [f"{round_no}-{repeat}-{len(name)}-{i}" for i in range(DELETED)]
                    await collection.insert_many([{"_id": i, "commit": "c"} for i in ids])  # not timed
                    start = tally.now()
                    await delete(collection, ids)
                    spent = [a + b for a, b in zip(spent, since(start, tally))]
                tally.add(name, (spent[0], spent[1], spent[2]), repeats * DELETED)
        await collection.drop()
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=3000, help="operations of each kind per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is printed)")
    args = parser.parse_args()
    server = FerretDBServer(Path(tempfile.mkdtemp(prefix="jmo-round-trip-")), free_port(), die_with_parent=True)
    server.start()
    try:
        record = server.record()
        assert record is not None
        tally = Tally(record.pid)
        uvloop.run(measure(server.uri, tally, args.ops, args.rounds))
        uvloop.run(measure_deletes(server.uri, tally, args.rounds))
        figures = tally.medians()
    finally:
        server.stop()
    print(f"one round trip, sequential, median of {args.rounds} rounds of {args.ops} (µs per operation)")
    print(f"{'operation':40s} {'client CPU':>10s} {'server CPU':>10s} {'wall':>8s}")
    for name, f in figures.items():
        print(f"{name:40s} {f['client_us']:10.0f} {f['server_us']:10.0f} {f['wall_us']:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
