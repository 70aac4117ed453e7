"""Load benchmark: registrations at fixed rates through the whole embedded stack, to the OTP in the sink.

``make bench-load`` (or ``.venv/bin/python bench/load.py --rates 10,25,50,100 --duration 30``)
starts FerretDB, Kafka, the SMTP/SMS sinks and the five services on free loopback ports with their
state in a temporary directory (never the default ports of ``make up``), then for each rate:

* publishes ``RegisterParticipant`` exactly as the gateway does (``jmo_cli.gateway``: the same
  envelope, topic, key and headers) for synthetic citizens of the embedded population registry,
  each registered once, at a fixed rate for ``--duration`` seconds;
* follows each journey by correlation id: ParticipantRegistered and OtpIssued on the events
  topics, the OTP (SMS, or email for ``--email-share`` of the citizens) in the sink's inbox
  (:func:`is_registration_otp`: not the "registration received" notice that comes first);
* prints, per rate: p50/p90/p99 of each stage, sustained throughput, CPU-seconds per registration
  per process (``/proc/<pid>/stat``), store commands per registration (FerretDB's
  ``serverStatus().metrics.commands``, the idle rate subtracted) and RSS per process.

``--growth 10000,200000`` then seeds the services' logs with that many commits (through the
store's document format, in bulk) and repeats ``--growth-rate`` at each size.

Figures are printed and written to ``bench/results_load.json``; nothing is asserted. Everything is
bounded: the number of registrations (rate x duration, at most the registry's citizens), the wait
for stragglers (``--drain``), and the whole run is stopped by killing what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from jmo_cli.gateway import Gateway, command_envelope
from jmo_contracts import new_id, stream_id, topics
from jmo_devstack.ferretdb import FerretDBServer
from jmo_devstack.kafka import KafkaServer
from jmo_devstack.net import free_port, health_ok
from jmo_devstack.paths import StackPaths
from jmo_devstack.secrets import local_secrets
from jmo_devstack.services import SERVICE_PORTS, ServiceProcess, python_module_command, service_env
from jmo_devstack.topics import create_topics
from jmo_eventstore.codec import PlainCodec
from jmo_eventstore.commits import build_commit
from jmo_eventstore.testing import an_event
from jmo_registries import identities
from jmo_runtime import ServiceSettings

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STAGES = ("registered", "otp_issued", "otp_delivered")
#: The follower's fetches wait this long for FOLLOW_MIN_BYTES of events (see :class:`Follower`).
FOLLOW_WAIT_MS = 250
FOLLOW_MIN_BYTES = 1 << 20
#: How the registration OTP is told from the journey's other notices in the sink (the notification
#: service's templates): the "registration received" SMS mentions an OTP too ("Kode OTP akan segera
#: dikirimkan") and arrives first, so "OTP" alone is not enough.
OTP_SMS_MARK = "Kode OTP pendaftaran"
OTP_EMAIL_SUBJECT = "Kode verifikasi pendaftaran JMO"

SEED_CHUNK = 90  # FerretDB v1 mishandles bulk writes of 100 documents or more
SEEDED_LOGS = ("registration", "identity", "notification")


def is_registration_otp(message: dict[str, Any]) -> bool:
    """True for a sink message that carries a registration OTP (SMS or email)."""
    if message.get("channel") == "sms":
        return OTP_SMS_MARK in message.get("body", "")
    return message.get("channel") == "email" and message.get("subject") == OTP_EMAIL_SUBJECT


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    """The processes of one benchmark run and where they listen."""

    home: Path
    kafka: KafkaServer
    ferretdb: FerretDBServer
    sinks: ServiceProcess
    services: dict[str, ServiceProcess]
    inbox: Path
    data_key: str

    def sealing(self) -> ServiceSettings:
        """What the gateway seals commands with: the services' shared key ring (as deployed)."""
        return ServiceSettings(**{"MONGODB_URI": self.ferretdb.uri}, data_key=self.data_key)

    def pids(self) -> dict[str, int]:
        out = {"kafka": _pid(self.kafka), "ferretdb": _pid(self.ferretdb), "sinks": self.sinks.pid}
        out.update({name: svc.pid for name, svc in self.services.items()})
        return {k: v for k, v in out.items() if v is not None}


def _pid(server: Any) -> int | None:
    record = server.record()
    return record.pid if record is not None else None


@contextmanager
def stack(keep: bool = False, profile: Path | None = None) -> Iterator[Stack]:
    """FerretDB, Kafka, sinks and the five services on free loopback ports; all stopped on exit.
    With ``profile``, FerretDB writes a CPU profile of the whole run there (``ferretdb.pprof``)."""
    paths = StackPaths.discover()
    home = Path(tempfile.mkdtemp(prefix="jmo-bench-load-"))
    cpu_profile = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        cpu_profile = profile / "ferretdb.pprof"
    ferretdb = FerretDBServer(home / "ferretdb", free_port(), paths=paths, die_with_parent=True, cpu_profile=cpu_profile)
    kafka = KafkaServer(home / "kafka", free_port(), free_port(), paths=paths, die_with_parent=True)
    smtp_port, sms_port = free_port(), free_port()
    inbox = home / "inbox" / "messages.jsonl"
    sinks = ServiceProcess("sinks", [paths.python, "-m", "jmo_devstack.sinks", "--smtp-port", str(smtp_port), "--http-port", str(sms_port), "--inbox", str(inbox)],
                           env=dict(os.environ), health_port=sms_port, log_path=home / "logs" / "sinks.log", cwd=paths.root, die_with_parent=True)
    started: list[Any] = []
    try:
        say(f"starting FerretDB and Kafka (state in {home}) ...")
        ferretdb.start()
        started.append(ferretdb)
        kafka.start()
        started.append(kafka)
        asyncio.run(create_topics(kafka.bootstrap, ""))
        sinks.start(wait_healthy=True, timeout=30)
        started.append(sinks)
        delivery = {"JMO_SMTP_HOST": "127.0.0.1", "JMO_SMTP_PORT": str(smtp_port), "JMO_SMTP_TLS": "none", "JMO_SMS_URL": f"http://127.0.0.1:{sms_port}/messages", "JMO_LOG_LEVEL": "WARNING"}
        keys = local_secrets(home / "secrets.json", environ={})
        env = service_env(kafka.bootstrap, ferretdb.uri, "", {**delivery, **keys})
        command = python_module_command(paths.python)
        services = {name: ServiceProcess(name, command(name), env=env, health_port=free_port(), log_path=home / "logs" / f"{name}.log", cwd=paths.root, die_with_parent=True) for name in SERVICE_PORTS}
        say("starting the five services ...")
        for svc in services.values():
            svc.start(wait_healthy=False)
            started.append(svc)
        deadline = time.monotonic() + 180
        while not all(health_ok(s.health_url, timeout=1.0) for s in services.values()):
            if time.monotonic() > deadline or not all(s.running for s in services.values()):
                raise RuntimeError("the services did not become healthy; see " + str(home / "logs"))
            time.sleep(0.5)
        yield Stack(home, kafka, ferretdb, sinks, services, inbox, keys["JMO_DATA_KEY"])
    finally:
        say("stopping what the benchmark started ...")
        for thing in reversed(started):
            try:
                thing.stop()
            except Exception as exc:  # keep stopping the rest
                say(f"could not stop {thing}: {exc!r}")
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


# --- measuring ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6
    except OSError:
        return 0.0


async def store_commands(client: AsyncMongoClient) -> dict[str, int]:
    status = await client.admin.command("serverStatus")
    counts = {name: int(v.get("total", 0)) for name, v in status.get("metrics", {}).get("commands", {}).items() if isinstance(v, dict)}
    return {k: v for k, v in counts.items() if v}


@dataclass
class Sample:
    at: float
    cpu: dict[str, float]
    commands: dict[str, int]
    own_cpu: float = 0.0  # this benchmark process (load generator and follower)


async def sample(st: Stack, client: AsyncMongoClient) -> Sample:
    commands = await store_commands(client)
    return Sample(time.monotonic(), {name: cpu_seconds(pid) for name, pid in st.pids().items()}, commands, cpu_seconds(os.getpid()))


def command_delta(a: Sample, b: Sample) -> dict[str, int]:
    out = {k: b.commands.get(k, 0) - a.commands.get(k, 0) for k in set(a.commands) | set(b.commands)}
    out["serverStatus"] = out.get("serverStatus", 0) - 1  # the benchmark's own sample
    return {k: v for k, v in out.items() if v}


@dataclass
class Journey:
    index: int
    correlation_id: str
    otp_to: str  # where the OTP goes: the phone (E.164) or the email address
    sent: float
    times: dict[str, float] = field(default_factory=dict)


class Follower:
    """Follows the events topics and the sink's inbox; stamps each journey's stages (wall clock).

    An event's stage is stamped with its record's timestamp (set by the relay's producer when it
    sent the event, this machine's clock), not when the follower read it, so the follower can read
    in large, slow batches: an observer that long-polled every topic at once would add a fetch of
    its own to each of the stack's publishes, and its cost to the broker's figures."""

    def __init__(self, bootstrap: str, inbox: Path) -> None:
        self.bootstrap, self.inbox = bootstrap, inbox
        self.by_correlation: dict[str, Journey] = {}
        self.by_recipient: dict[str, Journey] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._offset = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, client_id="bench-load-follower", fetch_max_wait_ms=FOLLOW_WAIT_MS, fetch_min_bytes=FOLLOW_MIN_BYTES)
        await consumer.start()
        parts = [TopicPartition(t, p) for t in (topics.events("registration"), topics.events("identity")) for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        self._consumer = consumer
        self._offset = self.inbox.stat().st_size if self.inbox.exists() else 0
        self._tasks = [asyncio.create_task(self._events()), asyncio.create_task(self._sink())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    def add(self, journey: Journey) -> None:
        self.by_correlation[journey.correlation_id] = journey
        self.by_recipient[journey.otp_to] = journey

    async def _events(self) -> None:
        assert self._consumer is not None
        wanted = {"ParticipantRegistered": "registered", "OtpIssued": "otp_issued"}
        while True:
            batches = await self._consumer.getmany(timeout_ms=FOLLOW_WAIT_MS, max_records=2000)
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    stage = wanted.get(headers.get("jmo-type", ""))
                    journey = self.by_correlation.get(headers.get("jmo-correlation-id", ""))
                    if stage and journey is not None:
                        journey.times.setdefault(stage, r.timestamp / 1000)  # CreateTime: when the relay sent it

    async def _sink(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            if not self.inbox.exists():
                continue
            with open(self.inbox, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            self._offset += end
            for line in chunk[:end].splitlines():
                message = json.loads(line)
                journey = self.by_recipient.get(message.get("to", ""))
                if journey is not None and is_registration_otp(message):
                    journey.times.setdefault("otp_delivered", datetime.fromisoformat(message["received_at"].replace("Z", "+00:00")).timestamp())


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()  # noqa: SLF001
        if parts := consumer.partitions_for_topic(topic):
            return parts
        await asyncio.sleep(0.1)
    raise LookupError(topic)


class Citizens:
    """Synthetic citizens, each handed out once per run, with a phone number and an email address of
    their own; ``email_share`` of them (spread evenly) choose email for their OTP, the rest SMS."""

    def __init__(self, email_share: float = 0.0) -> None:
        self.pool = identities(None, 100_000)
        self.next = 0
        self.email_share = email_share

    def take(self) -> tuple[int, dict[str, Any], str]:
        """The next citizen's index, RegisterParticipant payload, and where the OTP will go."""
        if self.next >= len(self.pool):
            raise LookupError("every synthetic citizen has registered in this run")
        i, p = self.next, self.pool[self.next]
        self.next += 1
        by_email = int((i + 1) * self.email_share) > int(i * self.email_share)
        data = {"category": "BPU", "nik": p["nik"], "full_name": p["full_name"], "email": f"load{i}@example.com", "phone": f"0812{i:08d}",
                "otp_channel": "email" if by_email else "sms"}
        return i, data, data["email"] if by_email else "+62812" + f"{i:08d}"

    def left(self) -> int:
        return len(self.pool) - self.next


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    values = sorted(values)

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": round(values[-1] * 1000, 1)}


def start_profiles(st: Stack, directory: Path | None, label: str, seconds: float) -> list[Any]:
    """``py-spy record`` (collapsed stacks) on each service for ``seconds``, when ``--profile`` asks."""
    import subprocess

    if directory is None:
        return []
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        say("--profile: py-spy is not installed (uv pip install py-spy); not profiling")
        return []
    directory.mkdir(parents=True, exist_ok=True)
    tag = label.replace("/", "per").replace(" ", "_").replace(":", "")
    return [subprocess.Popen([spy, "record", "--pid", str(svc.pid), "--duration", str(max(int(seconds), 1)), "--rate", "67", "--nonblocking",
                              "--format", "raw", "--output", str(directory / f"{name}-{tag}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, svc in st.services.items() if svc.pid is not None]


async def run_rate(st: Stack, client: AsyncMongoClient, citizens: Citizens, rate: float, duration: float, drain: float, idle: dict[str, Any], label: str,
                   profile: Path | None = None) -> dict[str, Any]:
    """Send ``rate`` registrations per second for ``duration`` seconds and follow each to its OTP."""
    count = min(int(rate * duration), citizens.left())
    profilers = start_profiles(st, profile, label, duration)
    follower = Follower(st.kafka.bootstrap, st.inbox)
    await follower.start()
    journeys: list[Journey] = []
    sends: list[asyncio.Task[None]] = []
    async with Gateway(st.kafka.bootstrap, sealing=st.sealing()) as gateway:  # seals as the gateway does (its key-ring inserts are counted too)
        before = await sample(st, client)
        start = time.monotonic()
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            i, data, otp_to = citizens.take()
            envelope = command_envelope("RegisterParticipant", data, stream=stream_id("registration"))
            journey = Journey(i, envelope.correlation_id, otp_to, time.time())
            follower.add(journey)
            journeys.append(journey)
            sends.append(asyncio.create_task(gateway.send(envelope)))
        await asyncio.gather(*sends)
        sending_took = time.monotonic() - start
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and not all("otp_delivered" in j.times for j in journeys):
            await asyncio.sleep(0.1)
        after = await sample(st, client)
    await follower.stop()
    for spy in profilers:
        await asyncio.to_thread(spy.wait)
    window = after.at - before.at
    done = [j for j in journeys if "otp_delivered" in j.times]
    commands = command_delta(before, after)
    total_commands = sum(commands.values())
    idle_commands = idle["commands_per_s"] * window
    cpu = {name: after.cpu.get(name, 0.0) - before.cpu.get(name, 0.0) for name in after.cpu}
    per = max(len(done), 1)
    last = max((j.times["otp_delivered"] for j in done), default=time.time())
    first = min((j.sent for j in journeys), default=time.time())
    result = {
        "label": label,
        "rate_per_s": rate,
        "sent": len(journeys),
        "completed": len(done),
        "sending_seconds": round(sending_took, 2),
        "window_seconds": round(window, 2),
        "sustained_per_s": round(len(done) / max(last - first, 1e-9), 1),
        "stages_from_send": {stage: percentiles([j.times[stage] - j.sent for j in journeys if stage in j.times]) for stage in STAGES},
        "store_commands_per_registration": round((total_commands - idle_commands) / per, 1),
        "store_commands_per_registration_raw": round(total_commands / per, 1),
        "store_commands_by_name_per_registration": {k: round(v / per, 2) for k, v in sorted(commands.items(), key=lambda kv: -kv[1])},
        "cpu_ms_per_registration": {name: round(v * 1000 / per, 2) for name, v in cpu.items()},
        "cpu_ms_per_registration_total": round(sum(cpu.values()) * 1000 / per, 2),
        "cpu_ms_per_registration_total_above_idle": round((sum(cpu.values()) - idle["cpu_per_s"] * window) * 1000 / per, 2),
        # the benchmark itself (sealing as the gateway does, following the topics) shares the same cores
        "cpu_ms_per_registration_bench_itself": round((after.own_cpu - before.own_cpu) * 1000 / per, 2),
        "rss_mb": {name: round(rss_mb(pid), 1) for name, pid in st.pids().items()},
    }
    return result


async def idle_rates(st: Stack, client: AsyncMongoClient, seconds: float) -> dict[str, Any]:
    a = await sample(st, client)
    await asyncio.sleep(seconds)
    b = await sample(st, client)
    window = b.at - a.at
    commands = command_delta(a, b)
    return {
        "seconds": round(window, 1),
        "commands_per_s": sum(commands.values()) / window,
        "commands_by_name": commands,
        "cpu_per_s": sum(b.cpu[k] - a.cpu.get(k, 0.0) for k in b.cpu) / window,
    }


async def quiet(client: AsyncMongoClient, idle: dict[str, Any], longest: float) -> float:
    """Wait (at most ``longest`` seconds) until the store is back near its idle command rate: what
    an overloaded run left queued must not be counted in the next. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < longest:
        a = sum((await store_commands(client)).values())
        await asyncio.sleep(2)
        b = sum((await store_commands(client)).values())
        if (b - a - 1) / 2 <= max(3 * idle["commands_per_s"], 5):
            break
    return time.monotonic() - started


async def seed(client: AsyncMongoClient, commits: int, events_per_commit: int = 2, commits_per_stream: int = 4) -> float:
    """Add ``commits`` commit documents, spread over the logs of the services on the registration
    path, exactly as ``build_commit`` makes them. Returns the seconds it took."""
    started = time.monotonic()
    gate = asyncio.Semaphore(4)

    async def one_chunk(collection: Any, docs: list[dict[str, Any]]) -> None:
        async with gate:
            await collection.insert_many(docs, ordered=False)

    per_log = commits // len(SEEDED_LOGS)
    for name in SEEDED_LOGS:
        collection = client[f"jmo_{name}"]["events_commits"]
        docs: list[dict[str, Any]] = []
        tasks: list[asyncio.Task[None]] = []
        made = 0
        while made < per_log:
            s = stream_id("seed")
            head = None
            for round_ in range(min(commits_per_stream, per_log - made)):
                version = round_ * events_per_commit
                head = build_commit(stream_id=s, expected_version=version, head=head, events=[an_event(s, version + i + 1) for i in range(events_per_commit)], cause_id=new_id(), codec=PlainCodec())
                docs.append(head)
                made += 1
                if len(docs) == SEED_CHUNK:
                    tasks.append(asyncio.create_task(one_chunk(collection, docs)))
                    docs = []
            if len(tasks) >= 16:
                await asyncio.gather(*tasks)
                tasks = []
        if docs:
            tasks.append(asyncio.create_task(one_chunk(collection, docs)))
        await asyncio.gather(*tasks)
    return time.monotonic() - started


async def log_sizes(client: AsyncMongoClient) -> dict[str, int]:
    names = await client.list_database_names()
    out = {}
    for name in names:
        if name.startswith("jmo_"):
            out[name.removeprefix("jmo_")] = await client[name]["events_commits"].estimated_document_count()
    return out


async def benchmark(st: Stack, args: argparse.Namespace) -> dict[str, Any]:
    client: AsyncMongoClient = AsyncMongoClient(st.ferretdb.uri)
    citizens = Citizens(args.email_share)
    results: dict[str, Any] = {"runs": []}
    try:
        # the broker's JIT and the services' caches warm under load, not with a handful: without it
        # the first rate reported pays for Kafka's compilation (~0.5 of a core for a minute)
        say(f"warming up ({args.warmup_rate:g}/s for {args.warmup:g} s, not counted) ...")
        await run_rate(st, client, citizens, rate=args.warmup_rate, duration=args.warmup, drain=60, idle={"commands_per_s": 0, "cpu_per_s": 0}, label="warm-up")
        await asyncio.sleep(2)
        await quiet(client, {"commands_per_s": 0}, args.backlog)
        idle = await idle_rates(st, client, args.idle)
        results["idle"] = idle
        say(f"idle: {idle['commands_per_s']:.2f} store commands/s, {idle['cpu_per_s'] * 1000:.0f} ms CPU/s")
        for rate in args.rates:
            say(f"rate {rate}/s for {args.duration:g} s ...")
            r = await run_rate(st, client, citizens, rate, args.duration, args.drain, idle, f"{rate:g}/s", profile=args.profile)
            r["log_commits"] = await log_sizes(client)
            results["runs"].append(r)
            say(one_line(r))
            await asyncio.sleep(args.pause)
            if (waited := await quiet(client, idle, args.backlog)) > 3:
                say(f"waited {waited:.0f} s for the backlog of that run to clear")
        seeded = 0
        for size in args.growth:
            took = await seed(client, size - seeded)
            seeded = size
            say(f"seeded the logs to {size} extra commits in {took:.0f} s")
            await asyncio.sleep(args.pause)
            await quiet(client, idle, args.backlog)
            r = await run_rate(st, client, citizens, args.growth_rate, args.duration, args.drain, idle, f"growth {size}: {args.growth_rate:g}/s")
            r["seeded_commits"] = size
            r["seed_seconds"] = round(took, 1)
            r["log_commits"] = await log_sizes(client)
            results["runs"].append(r)
            say(one_line(r))
    finally:
        await client.close()
    return results


def one_line(r: dict[str, Any]) -> str:
    otp = r["stages_from_send"]["otp_delivered"] or {}
    return (f"{r['label']}: {r['completed']}/{r['sent']} OTPs, {r['sustained_per_s']}/s sustained, OTP p50 {otp.get('p50_ms')} ms p99 {otp.get('p99_ms')} ms, "
            f"{r['store_commands_per_registration']} store commands and {r['cpu_ms_per_registration_total']} ms CPU per registration")


def table(results: dict[str, Any]) -> str:
    rows = ["| run | done/sent | sustained /s | registered p50/p99 ms | OtpIssued p50/p99 ms | OTP in sink p50/p90/p99 ms | store cmds/reg | CPU ms/reg (all) | CPU ms/reg by process | bench's own CPU ms/reg | RSS MB by process |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        s = r["stages_from_send"]

        def pq(stage: str, keys: tuple[str, ...] = ("p50_ms", "p99_ms")) -> str:
            return " / ".join(str(s[stage][k]) for k in keys) if s[stage] else "-"

        cpu = ", ".join(f"{k} {v}" for k, v in sorted(r["cpu_ms_per_registration"].items(), key=lambda kv: -kv[1]))
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r["rss_mb"].items())
        rows.append(f"| {r['label']} | {r['completed']}/{r['sent']} | {r['sustained_per_s']} | {pq('registered')} | {pq('otp_issued')} | {pq('otp_delivered', ('p50_ms', 'p90_ms', 'p99_ms'))} | "
                    f"{r['store_commands_per_registration']} | {r['cpu_ms_per_registration_total']} | {cpu} | {r['cpu_ms_per_registration_bench_itself']} | {rss} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,25,50,100", help="registrations per second, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending per rate")
    parser.add_argument("--drain", type=float, default=60.0, help="longest wait for the last journeys after sending stops")
    parser.add_argument("--pause", type=float, default=5.0, help="quiet seconds between runs")
    parser.add_argument("--backlog", type=float, default=180.0, help="longest wait, after a run, for what it left queued to clear")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of warm-up at --warmup-rate, not reported")
    parser.add_argument("--warmup-rate", type=float, default=25.0, help="registrations per second while warming up")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds over which the idle rates are measured")
    parser.add_argument("--growth", default="", help="log sizes (extra commits) to seed and repeat --growth-rate at, e.g. 10000,200000")
    parser.add_argument("--growth-rate", type=float, default=25.0)
    parser.add_argument("--email-share", type=float, default=0.0, help="share of the citizens (0-1) who choose email for their OTP (SMTP) instead of SMS")
    parser.add_argument("--out", default=str(HERE / "results_load.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary state and logs")
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles (collapsed stacks) of each service during each rate, and FerretDB's CPU profile of the whole run (go tool pprof)")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    args.growth = sorted(int(n) for n in args.growth.split(",") if n.strip())
    with stack(keep=args.keep, profile=args.profile) as st:
        results = asyncio.run(benchmark(st, args))
    results["environment"] = {"cpu_count": os.cpu_count(), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "at": datetime.now().astimezone().isoformat(timespec="seconds")}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nidle: {results['idle']['commands_per_s']:.2f} store commands/s, {results['idle']['cpu_per_s'] * 1000:.0f} ms CPU/s (subtracted from 'store cmds/reg'); JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
