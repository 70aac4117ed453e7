"""How ``jmo audit state`` and ``jmo audit verify`` behave as the logs grow (issue 14: under 1 s for
one participant among a million events; verify over a million events with a progress bar).

    .venv/bin/python bench/audit_scale.py [--events 1000000] [--steps 3] [--per-commit 4]

Uses MONGODB_URI when set, else starts an embedded FerretDB on a free loopback port in a temporary
directory (stopped on exit). Seeds the registration log with commits of other (synthetic)
participants, written fast as the store's own documents (``build_commit``, bulk inserts), in
``--steps`` equal steps up to ``--events``; after each step it times, for one participant written
through the store API with the services' codec (a registration, an activation and a profile update):

* ``state_at``: the fold behind ``jmo audit state`` (median of 5), and the whole ``jmo audit state``
  command once (a fresh process: Python start-up and imports included);
* ``verify`` of the registration log (the call ``jmo audit verify`` makes per log): its time, the
  CPU time this process spent in it (what is left for the client once the database scans fast, as
  MongoDB does), and its ratio to the floor: a bare scan of the same collection (``bare_scan_seconds``,
  the faster of one before and one after verify), which is what the database costs before anything
  is checked.

Figures are printed (and written to bench/results_audit.json), never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from jmo_contracts import Envelope, new_id
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.profile_update import ProfileUpdated, ProfileUpdateStarted, ProfileValues
from jmo_contracts.registration import AccountActivated, ParticipantRegistered, Program
from jmo_eventstore import MongoEventStore, PlainCodec
from jmo_eventstore.commits import build_commit
from jmo_profile_update.adapters.profiles import COLLECTION, MongoProfileStore
from jmo_runtime import ServiceSettings
from jmo_runtime.service import personal_data_codec

HERE = Path(__file__).resolve().parent
CHUNK = 90  # FerretDB v1 mishandles bulk writes of 100 documents or more
WRITERS = 4
T0 = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


def other_commits(n_events: int, per_commit: int, commits_per_stream: int = 3) -> list[dict[str, Any]]:
    """Commit documents of synthetic participants (3 commits per stream), ``n_events`` events in all."""
    docs: list[dict[str, Any]] = []
    made = 0
    while made < n_events:
        participant = new_id()
        stream = f"registration-{participant}"
        head = None
        for c in range(commits_per_stream):
            count = min(per_commit, n_events - made)
            if count <= 0:
                break
            events = [
                Envelope(type="RegistrationNikConfirmed", schema_version=1, occurred_at=T0 - timedelta(days=30), correlation_id=participant, stream_id=stream,
                         payload={"participant_id": participant, "source_message_id": new_id()})
                for _ in range(count)
            ]
            head = build_commit(stream_id=stream, expected_version=head["to_version"] if head else 0, head=head, events=events, cause_id=new_id(), codec=PlainCodec())
            docs.append(head)
            made += count
    return docs


async def seed(collection: Any, docs: list[dict[str, Any]]) -> float:
    chunks = [docs[i : i + CHUNK] for i in range(0, len(docs), CHUNK)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)

    async def writer() -> None:
        while not queue.empty():
            await collection.insert_many(queue.get_nowait(), ordered=False)

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return time.perf_counter() - start


async def the_participant(client: AsyncMongoClient, settings: ServiceSettings) -> str:
    participant, session = new_id(), new_id()
    reg_db, pu_db = client[settings.database_for("registration")], client[settings.database_for("profile-update")]
    registration = MongoEventStore(reg_db, name="events", codec=personal_data_codec(reg_db, settings))
    sessions = MongoEventStore(pu_db, name="events", codec=personal_data_codec(pu_db, settings))
    profiles = MongoProfileStore(pu_db[COLLECTION], sessions.codec)
    plan = [
        (registration, f"registration-{participant}", ParticipantRegistered(
            participant_id=participant, category=Category.BPU, nik="3201014508900021", full_name="BENCH PESERTA", email="bench@example.com",
            phone="+6281234500021", otp_channel=OtpChannel.EMAIL, birth_date=date(1990, 8, 5), gender="F"), T0),
        (registration, f"registration-{participant}", AccountActivated(
            participant_id=participant, category=Category.BPU, kpj_number="26112100042", digital_card_id=new_id(), programs=[Program.JKK, Program.JKM],
            full_name="BENCH PESERTA", email="bench@example.com", phone="+6281234500021", notification_channel=OtpChannel.EMAIL), T0 + timedelta(minutes=10)),
        (sessions, f"profile-update-{session}", ProfileUpdateStarted(participant_id=participant, session_id=session, expires_at=T0 + timedelta(hours=2)), T0 + timedelta(hours=1)),
        (sessions, f"profile-update-{session}", ProfileUpdated(
            participant_id=participant, session_id=session, changed_fields=["phone"], new_values=ProfileValues(phone="+6281234500022"),
            contact_email="bench@example.com", contact_phone="+6281234500022", notification_channel=OtpChannel.EMAIL), T0 + timedelta(hours=1, minutes=5)),
    ]
    versions: dict[str, int] = {}
    for store, stream, message, at in plan:
        envelope = Envelope.wrap(message, stream_id=stream, correlation_id=participant, occurred_at=at)
        await store.append(stream, versions.get(stream, 0), [envelope], cause_id=new_id())
        versions[stream] = versions.get(stream, 0) + 1
        await profiles.apply(envelope)
    return participant


async def bare_scan(collection: Any) -> float:
    """Seconds to read every document of ``collection`` and do nothing with it: verify's floor."""
    start = time.perf_counter()
    async for _ in collection.find({}, batch_size=1000):
        pass
    return time.perf_counter() - start


async def measure(settings: ServiceSettings, participant: str, cli_env: dict[str, str]) -> dict[str, float]:
    sys.path.insert(0, str(HERE.parent / "cli" / "src"))
    from jmo_cli.asof import state_at
    from jmo_cli.stores import open_stores

    at = T0 + timedelta(hours=2)
    timings = []
    async with open_stores(settings) as stores:
        state = await state_at(stores, participant, at)
        assert state["profile"]["phone"] == "+6281234500022", state["profile"]
        for _ in range(5):
            start = time.perf_counter()
            await state_at(stores, participant, at)
            timings.append(time.perf_counter() - start)
        log = stores["registration"]
        scans = [await bare_scan(log.commits)]
        start, cpu = time.perf_counter(), time.process_time()
        problems = await log.verify()
        verify_seconds, verify_cpu = time.perf_counter() - start, time.process_time() - cpu
        scans.append(await bare_scan(log.commits))  # before and after: the first read after seeding may pay for it
        scan_seconds = min(scans)
    assert not problems, problems[:3]
    jmo = str(Path(sys.executable).with_name("jmo"))
    start = time.perf_counter()
    done = subprocess.run([jmo, "audit", "state", participant, "--at", at.isoformat()], env=cli_env, capture_output=True, text=True, check=False, timeout=300)
    cli_seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        "state_at_median_ms": statistics.median(timings) * 1000, "state_cli_seconds": cli_seconds,
        "verify_registration_seconds": verify_seconds, "verify_cpu_seconds": verify_cpu, "bare_scan_seconds": scan_seconds,
    }


async def run(uri: str, total: int, steps: int, per_commit: int) -> list[dict[str, Any]]:
    prefix = "benchaudit" + secrets.token_hex(3) + "_"
    data_key = base64.b64encode(os.urandom(32)).decode()  # this run only; nothing is kept
    settings = ServiceSettings.model_validate({"MONGODB_URI": uri, "database_prefix": prefix, "data_key": data_key})
    cli_env = os.environ | {"MONGODB_URI": uri, "JMO_DATABASE_PREFIX": prefix, "JMO_DATA_KEY": data_key, "JMO_AUDITOR": "bench"}
    client: AsyncMongoClient = AsyncMongoClient(uri)
    rows: list[dict[str, Any]] = []
    try:
        participant = await the_participant(client, settings)
        commits = client[settings.database_for("registration")]["events_commits"]
        seeded = 0
        rows.append({"events_in_log": 4, **await measure(settings, participant, cli_env)})
        _say(rows[-1])
        for step in range(1, steps + 1):
            target = total * step // steps
            docs = other_commits(target - seeded, per_commit)
            seconds = await seed(commits, docs)
            seeded = target
            row = {"events_in_log": seeded + 4, "seeded_commits": len(docs), "seed_events_per_s": (target - (total * (step - 1) // steps)) / seconds}
            row |= await measure(settings, participant, cli_env)
            row["verify_events_per_s"] = row["events_in_log"] / row["verify_registration_seconds"]
            row["verify_to_scan"] = row["verify_registration_seconds"] / row["bare_scan_seconds"]
            rows.append(row)
            _say(row)
    finally:
        for service in ("registration", "identity", "biometric", "profile-update", "notification", "audit"):
            await client.drop_database(settings.database_for(service))
        await client.close()
    return rows


def _say(row: dict[str, Any]) -> None:
    print("  " + ", ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v:,}" for k, v in row.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--per-commit", type=int, default=4)
    args = parser.parse_args()
    with ExitStack() as stack:
        uri = os.environ.get("MONGODB_URI")
        if not uri:
            from jmo_devstack.ferretdb import FerretDBServer
            from jmo_devstack.net import free_port

            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jmo-bench-audit-")))
            server = FerretDBServer(workdir / "ferretdb", free_port(), die_with_parent=True)
            server.start()
            stack.callback(server.stop)
            uri = server.uri
        print(f"audit scale: up to {args.events:,} events ({args.per_commit} per commit) in {args.steps} steps on {uri}", flush=True)
        rows = asyncio.run(run(uri, args.events, args.steps, args.per_commit))
    (HERE / "results_audit.json").write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "args": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
