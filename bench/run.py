"""Benchmarks of the event store and the relay, each against a raw-driver baseline, and of face
verification beside the naive face_recognition pipeline (``suite_biometric``; ``run.py biometric``
runs only that one, without servers, and writes bench/results_biometric.json).

Run with ``make bench`` (or ``.venv/bin/python bench/run.py``). Starts its own Kafka and FerretDB
on free loopback ports unless KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI are both set, measures,
stops what it started, and writes bench/results.json and bench/summary.txt. Ratios are printed,
never asserted: the exit status is 0 unless something crashed.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

import probe  # noqa: E402
import report  # noqa: E402
import suite_append  # noqa: E402
import suite_biometric  # noqa: E402
import suite_relay  # noqa: E402
import suite_replay  # noqa: E402
from context import Bench  # noqa: E402
from harness import Metric  # noqa: E402
from servers import delete_topics, servers  # noqa: E402

HERE = Path(__file__).resolve().parent


async def benchmark(kafka_bootstrap: str, mongodb_uri: str, kafka_options: dict[str, Any] | None = None) -> tuple[list[Metric], dict[str, Any], dict[str, str]]:
    """Every suite against the given servers; returns metrics, extra timings and server versions."""
    run_id = "bench" + secrets.token_hex(4)
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri)
    bench = Bench(client[run_id], kafka_bootstrap, run_id, dict(kafka_options or {}))
    metrics: list[Metric] = []
    extras: dict[str, Any] = {}
    try:
        server = await client.admin.command("buildInfo")
        _say("append ...")
        metrics += await suite_append.run(bench)
        _say("building and sequencing the replay log ...")
        log = await suite_replay.build_log(bench)
        extras["sequence_whole_log"] = f"{log.commits} commits ({log.events} events) sequenced in {log.sequence_seconds:.2f} s = {log.commits / log.sequence_seconds:,.1f} commits/s (one run, untimed by the harness)"
        _say("replay and sequence() ...")
        metrics += await suite_replay.run(bench, log)
        _say("relay ...")
        metrics += await suite_relay.run(bench, log)
        _say("where the time goes ...")
        extras["breakdown"] = await probe.breakdown(bench, log)
        extras["query_ms_by_collection_size"] = await probe.scaling(bench)
    finally:
        await client.drop_database(run_id)
        await client.close()
        await delete_topics(kafka_bootstrap, bench.topics, bench.kafka_options)
    return metrics, extras, {"mongodb_protocol_server": _server_name(server)}


def _server_name(build_info: dict[str, Any]) -> str:
    """``FerretDB <version>`` or ``MongoDB <version>``; a FerretDB built from source reports ``unknown``,
    so fall back to the version deploy/ferretdb/go.mod pins."""
    ferret = build_info.get("ferretdbVersion")
    if ferret is None:
        return f"MongoDB {build_info.get('version')}"
    if ferret == "unknown":
        go_mod = HERE.parent / "deploy" / "ferretdb" / "go.mod"
        pins = [line.split()[-1] for line in go_mod.read_text().splitlines() if "github.com/FerretDB/FerretDB " in line] if go_mod.exists() else []
        ferret = f"{pins[0]} (go.mod pin)" if pins else "unknown"
    return f"FerretDB {ferret}"


def _kafka_version() -> str:
    jars = sorted((HERE.parent / ".local" / "kafka" / "libs").glob("kafka_2.13-*.jar"))
    return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "unknown"


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE, capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment(source: str, server_versions: dict[str, str], seconds: float) -> dict[str, Any]:
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "servers": source,
        "git": _git_revision(),
        "wall_seconds": round(seconds, 1),
        "versions": {
            "python": platform.python_version(),
            "pymongo": version("pymongo"),
            "aiokafka": version("aiokafka"),
            "pydantic": version("pydantic"),
            "kafka": _kafka_version() if source == "embedded" else "external",
            **server_versions,
        },
    }


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    """``run.py`` runs every suite; ``run.py biometric`` only the face verification suite (no servers)."""
    only = sys.argv[1:]
    if only and only != ["biometric"]:
        _say("usage: run.py [biometric]")
        return 2
    if only == ["biometric"]:
        figures = suite_biometric.run(_say)
        (HERE / "results_biometric.json").write_text(json.dumps(figures, indent=2) + "\n")
        print("\n".join(suite_biometric.summary_lines(figures)))
        return 0
    started = time.perf_counter()
    _say("starting servers ...")
    with servers() as infra:
        _say(f"servers: {infra.source} (kafka {infra.kafka_bootstrap}, store {infra.mongodb_uri})")
        metrics, extras, server_versions = asyncio.run(benchmark(infra.kafka_bootstrap, infra.mongodb_uri, infra.admin_options()))
        _say("stopping servers ...")
    figures = suite_biometric.run(_say)
    (HERE / "results_biometric.json").write_text(json.dumps(figures, indent=2) + "\n")
    env = environment(infra.source, server_versions, time.perf_counter() - started)
    print(report.write(HERE, metrics, env, extras), end="")
    print("\n" + "\n".join(suite_biometric.summary_lines(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
