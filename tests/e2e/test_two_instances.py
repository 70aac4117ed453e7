"""Two instances of a service under load, one killed (SIGKILL) in the middle of a burst: every
journey still completes, nothing is decided or sent twice, and what the dead instance had left in
its outbox is published by the instance that survives — not by a restart (nothing is restarted).

Registration, identity and notification run twice each: they are the services a registration
passes through up to its OTP (RegisterParticipant → ParticipantRegistered → NikVerified, OtpIssued
and the sealed delivery request → the SMS), so killing one instance of each hands over a command
consumer and log (registration), a consumer, log and quota holder (identity) and a sender with
delivery claims (notification). Biometric and profile-update are not on that path; starting them
too would only load the two cores of the machine this runs on: ``test_two_instances_pengkinian``
runs two of each of them under a burst of pengkinian-data sessions and kills one of each, with
the helpers of this module.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from jmo_cli.gateway import Gateway, command_envelope
from jmo_contracts import Envelope, topics
from jmo_registries import identities

from .test_notification import CODE, until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
BURST = 36
KILLED = ("registration", "identity", "notification")
#: A claim the dead notifier held is taken over after this long (default 60 s; shorter keeps the test short).
LEASE = {"JMO_CLAIM_LEASE_SECONDS": "10"}
SLOT_PREFIX = "~outbox~"


def applicants(count: int, first: int) -> list[dict[str, Any]]:
    """Synthetic citizens no other test of the session registers (they are from far down the list),
    each with an SMS number of their own."""
    pool = identities("BPU", first + count)[first:]
    return [
        {"category": "BPU", "nik": p["nik"], "full_name": p["full_name"], "email": f"dua{first + n:04d}@example.com", "phone": f"08137{first + n:07d}", "otp_channel": "sms"}
        for n, p in enumerate(pool)
    ]


def store_instance(proc: Any) -> str:
    """The outbox owner of a service process, as its log names it at start-up."""
    for line in proc.read_log().splitlines():
        if line.startswith("{") and (entry := json.loads(line)).get("event") == "service started":
            return entry["store_instance"]
    raise AssertionError(f"{proc.name}: no 'service started' line in {proc.log_path}")


def work_done(proc: Any) -> int:
    """How many decisions (events appended) and deliveries a process has logged so far."""
    log = proc.read_log()
    return log.count('"event appended"') + log.count('"notification sent"')


async def pending_at(database: Any, instance: str) -> dict[str, list[str]]:
    """The commits ``instance`` left pending in its outbox (commit id -> its events' message ids):
    its slots that name a commit written with them (not void, not a lost race)."""
    slots = await database["events_commits"].find({"_id": {"$regex": f"^{re.escape(SLOT_PREFIX + instance)}~"}}).to_list(None)
    pending: dict[str, list[str]] = {}
    for slot in slots:
        if slot.get("void") or "commit" not in slot:
            continue
        commit = await database["events_commits"].find_one({"_id": slot["commit"]})
        if commit is not None and commit.get("outbox_slot") == slot["_id"]:
            pending[commit["_id"]] = [e["message_id"] for e in commit["events"]]
    return pending


async def published(infra: Any, topic: str) -> list[Envelope]:
    """Everything on ``topic`` now (each record, duplicates included), read from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=None, enable_auto_commit=False, **infra.kafka_options("ops"))
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await wait_for_partitions(consumer, topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out: list[Envelope] = []
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(Envelope.from_json(r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def wait_for_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        if parts := consumer.partitions_for_topic(topic):
            return parts
        await consumer._client.force_metadata_update()  # noqa: SLF001 (no public refresh in aiokafka)
        await asyncio.sleep(0.1)
    raise LookupError(topic)


def otps(messages: list[dict[str, Any]], phone: str) -> list[dict[str, Any]]:
    """The messages to ``phone`` that carry a code."""
    return [m for m in messages if m["to"] == phone and CODE.search(m["body"] or "")]


def with_otp(sinks: Any, phones: Any) -> set[str]:
    """Which of ``phones`` have received a code so far (one read of the sink)."""
    messages = sinks.messages()
    return {phone for phone in phones if otps(messages, phone)}


@pytest.mark.timeout(900)
async def test_a_burst_survives_one_of_two_instances_of_each_service_being_killed(
    infra: Any, topic_prefix: str, database_prefix: str, service_runner: Any, sinks: Any, mongo_client: Any
) -> None:
    started = time.monotonic()
    pairs = {name: [service_runner(name, {**sinks.env, **LEASE}), service_runner(name, {**sinks.env, **LEASE})] for name in KILLED}
    people = applicants(BURST, 660)
    phones = {"+62" + p["phone"][1:]: p for p in people}
    journeys = [command_envelope("RegisterParticipant", p) for p in people]
    participants = {j.stream_id.removeprefix("registration-") for j in journeys}
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        await asyncio.gather(*(gateway.send(j) for j in journeys))  # the whole burst at once, as a busy gateway would
    # at the first OTP: consumers take what waits in batches, so a whole burst may land within one poll later on
    at_kill = await until(lambda: n if (n := len(with_otp(sinks, phones))) >= 1 else None, 180, every=0.05)
    assert at_kill, "the burst did not get going"

    # kill the instance of each service that has done more of the work so far (the other one may
    # have held no partition until now: it must take them all over)
    victims = {name: max(pair, key=work_done) for name, pair in pairs.items()}
    for proc in victims.values():
        proc.kill()  # SIGKILL: no shutdown hook, no settling, no offset commit
    left: dict[str, dict[str, list[str]]] = {}
    for name, proc in victims.items():
        left[name] = await pending_at(mongo_client[f"{database_prefix}jmo_{name}"], store_instance(proc))
    on_kafka_at_kill: set[str] = set()
    for topic in (*map(topics.events, KILLED), topics.OTP_DELIVERY):
        on_kafka_at_kill.update(e.message_id for e in await published(infra, topic_prefix + topic))
    unpublished_at_kill = {name: [c for c, ids in commits.items() if not set(ids) <= on_kafka_at_kill] for name, commits in left.items()}

    # every journey reaches its OTP, delivered by SMS once
    done = await until(lambda: len(with_otp(sinks, phones)) == BURST or None, 300, every=0.5)
    await asyncio.sleep(5)  # anything sent twice would arrive now (claims of the dead notifier are 10 s leases)
    assert done, f"{BURST - len(with_otp(sinks, phones))} of {BURST} journeys have no OTP in the SMS sink"
    messages = sinks.messages()
    for phone in phones:
        assert len(otps(messages, phone)) == 1, "an OTP sent twice (or two OTPs issued)"
        assert len([m for m in messages if m["to"] == phone]) == 2, "besides the OTP only the 'pendaftaran diterima' notice is sent"

    # one decision per cause: each participant's events appear once each (publications may repeat,
    # at least once; the message ids may not)
    registration = await published(infra, topic_prefix + topics.events("registration"))
    identity = await published(infra, topic_prefix + topics.events("identity"))
    delivery = await published(infra, topic_prefix + topics.OTP_DELIVERY)
    notification = await published(infra, topic_prefix + topics.events("notification"))
    decisions: dict[str, Counter[str]] = defaultdict(Counter)
    for e in {e.message_id: e for e in [*registration, *identity, *delivery]}.values():
        pid = e.stream_id.split("-", 1)[1]
        if pid in participants:
            decisions[pid][e.type] += 1
    assert set(decisions) == participants
    for counted in decisions.values():
        assert counted["ParticipantRegistered"] == counted["NikVerified"] == counted["OtpIssued"] == counted["OtpDeliveryRequested"] == 1, dict(counted)
        assert all(n == 1 for n in counted.values()), dict(counted)
    outcomes = Counter(e.stream_id for e in {e.message_id: e for e in notification}.values() if e.type in ("NotificationSent", "NotificationFailed"))
    assert all(n == 1 for n in outcomes.values()), "a notification with two outcomes"

    # the dead instances' outboxes were taken over by the survivors (once silent for the relay's
    # recover_after, 10 s; a journey may well end sooner, since a commit left pending need not be on
    # its way to the OTP): their slots are gone and so is their entry among the relays, and every
    # commit they left pending is on Kafka
    for name, proc in victims.items():
        database = mongo_client[f"{database_prefix}jmo_{name}"]
        dead = store_instance(proc)
        assert await until_async(lambda: _gone(database, dead), 60), f"{name}: the dead instance's outbox was not taken over: {await _outbox(database, dead)}"
        assert not proc.running
    on_kafka = {e.message_id for topic in (*map(topics.events, KILLED), topics.OTP_DELIVERY) for e in await published(infra, topic_prefix + topic)}
    for name, commits in left.items():
        for commit, message_ids in commits.items():
            assert set(message_ids) <= on_kafka, f"{name}: {commit}, left pending by the dead instance, was never published"
    assert sum(len(c) for c in left.values()) > 0, "the killed instances had nothing pending: the hand-over was not tested"
    assert at_kill < BURST, "the kill came after the burst was done; nothing was tested"
    survivors = [p for pair in pairs.values() for p in pair if p not in victims.values()]
    took_over = {p.name: p.read_log().count("relay publishes commits a silent instance left pending") for p in survivors}
    claims = sum(p.read_log().count("delivery claim taken over") for p in survivors)
    print(
        f"\nrecovery rounds of the survivors that published a dead instance's commits {took_over}; delivery claims taken over {claims};"
        f"\ntwo instances, {BURST} registrations: killed at {at_kill} OTPs delivered; pending in the dead outboxes "
        f"{ {n: len(c) for n, c in left.items()} }, of which not on Kafka at the kill {unpublished_at_kill}; "
        f"SMS provider requests {sinks.requests()['sms']} for {len(sinks.messages())} messages; {time.monotonic() - started:.0f} s"
    )


async def _outbox(database: Any, instance: str) -> dict[str, Any]:
    """What is left of ``instance``'s outbox: its slots and its entry among the relays."""
    slots = await database["events_commits"].find({"_id": {"$regex": f"^{re.escape(SLOT_PREFIX + instance)}~"}}, {"_id": 1, "void": 1}).to_list(None)
    return {"slots": slots, "relay": await database["events_relays"].find_one({"_id": instance})}


async def _gone(database: Any, instance: str) -> bool:
    return await _outbox(database, instance) == {"slots": [], "relay": None}


async def until_async(check: Any, timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(every)
    return bool(await check())


async def test_two_instances_sweeping_the_same_due_registrations_expire_each_once(infra: Any, topic_prefix: str, service_runner: Any) -> None:
    """Both instances run the expiry sweep over the one schedule (no lease on it): each sees every
    due registration, and each registration still expires once — the expiry's message id is
    derived from the stream, so the second decision is the first one's duplicate."""
    sweep = {"JMO_REGISTRATION_TIMEOUT_SECONDS": "3", "JMO_REGISTRATION_SWEEP_SECONDS": "0.2"}
    service_runner("registration", sweep), service_runner("registration", sweep)  # no identity: they never get further
    journeys = [command_envelope("RegisterParticipant", p) for p in applicants(8, 700)]
    streams = {j.stream_id for j in journeys}

    async def expiries() -> Counter[str]:
        """RegistrationExpired decisions per registration (distinct message ids: publications may repeat)."""
        events = {e.message_id: e for e in await published(infra, topic_prefix + topics.events("registration"))}.values()
        return Counter(e.stream_id for e in events if e.type == "RegistrationExpired" and e.stream_id in streams)

    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        await asyncio.gather(*(gateway.send(j) for j in journeys))
    assert await until_async(lambda: _all_expired(expiries, streams), 120), "not every registration expired"
    await asyncio.sleep(3)  # fifteen more sweeps of each instance: a second expiry would be published by now
    assert await expiries() == dict.fromkeys(streams, 1)


async def _all_expired(expiries: Any, streams: set[str]) -> bool:
    return set(await expiries()) == streams
