"""A hostile burst against the running services (issue 12): several hundred messages of over a
hundred kinds on every topic written from outside. Each is parked in its topic's DLQ with a reason
or answered with a ``CommandRejected``; none is acted on; afterwards every partition of every one
of those topics answers an ordinary command, every /health says ok, and the services are idle.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from jmo_cli.gateway import Gateway
from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.catalog import accepted_on
from jmo_contracts.export import example_envelope
from jmo_contracts.messages import registered
from jmo_devstack.topics import read_records
from jmo_runtime.messaging import DLQ_REASON, DLQ_SOURCE

from .hostile_messages import OUTSIDE_TOPICS, Hostile, hostile_batch

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
#: What the ``topics`` fixture creates every consumed topic with.
PARTITIONS = topics.PARTITIONS


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ordinary(topic: str, stream_kind: str, partition: int) -> Envelope:
    """A well-formed command for ``topic`` whose key lands on ``partition``: it gets an answer
    (an event or a rejection) without needing a journey behind it."""
    partitioner = DefaultPartitioner()
    while True:
        stream = f"{stream_kind}-{new_id()}"
        if partitioner(stream.encode(), list(range(PARTITIONS)), list(range(PARTITIONS))) == partition:
            break
    type_name = "RegisterParticipant" if topic == topics.commands("registration") else sorted(accepted_on(topic))[0]
    envelope = example_envelope(registered()[type_name])
    return envelope.model_copy(update={"message_id": new_id(), "correlation_id": new_id(), "stream_id": stream})


async def test_a_hostile_burst_is_parked_or_refused_and_every_partition_still_answers(infra: Any, topic_prefix: str, service_runner: Any) -> None:
    services = {name: service_runner(name, {"JMO_BIOMETRIC_WORKERS": "1"} if name == "biometric" else None, timeout=120) for name in ("registration", "identity", "biometric", "profile-update")}
    batch = hostile_batch()
    sent: dict[tuple[str, int, int], Hostile] = {}
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        for topic, messages in batch.items():
            for hostile in messages:
                partition, offset = await gateway.send_raw(topic, hostile.value, key=hostile.key, headers=hostile.headers)
                sent[(topic_prefix + topic, partition, offset)] = hostile

        # every partition of every outside topic answers an ordinary command
        started = time.monotonic()
        ordinary = [_ordinary(topic, kind, p) for topic, kind in OUTSIDE_TOPICS.items() for p in range(PARTITIONS)]
        for envelope in ordinary:
            await gateway.send(envelope)
        answered: dict[str, float] = {}
        refused_ids: set[str] = set()
        caused: Counter[str] = Counter()
        hostile_ids = {h.message_id for h in sent.values() if h.message_id}
        deadline = time.monotonic() + 120
        waiting = {e.correlation_id for e in ordinary}
        quiet_since = time.monotonic()
        assert gateway._consumer is not None
        while time.monotonic() < deadline and (waiting or time.monotonic() - quiet_since < 5):  # until refusals stop coming
            for records in (await gateway._consumer.getmany(timeout_ms=500)).values():
                quiet_since = time.monotonic()
                for record in records:
                    event = Envelope.from_json(record.value)
                    if event.correlation_id in waiting:
                        waiting.discard(event.correlation_id)
                        answered[event.correlation_id] = time.monotonic() - started
                    if event.causation_id in hostile_ids:
                        caused[event.type] += 1
                        if event.type == "CommandRejected":
                            refused_ids.add(event.payload["command_id"])

    parked: dict[tuple[str, int, int], str] = {}
    for topic in batch:
        expected = sum(1 for (t, _, _), h in sent.items() if t == topic_prefix + topic and h.message_id not in refused_ids)
        for record in await read_records(infra.kafka_bootstrap, topic_prefix + topics.dlq(topic), expected, timeout=60, client_options=infra.kafka_options("ops")):
            headers = {k: v.decode() for k, v in record.headers}
            name, partition, offset = headers[DLQ_SOURCE].rsplit("/", 2)
            parked[(name, int(partition), int(offset))] = headers[DLQ_REASON]

    unanswered = [h.kind for where, h in sent.items() if where not in parked and h.message_id not in refused_ids]
    assert unanswered == [], f"{len(unanswered)} hostile messages got neither a DLQ entry nor a rejection"
    assert set(caused) == {"CommandRejected"}, f"hostile messages caused {dict(caused)}"  # none acted on
    assert waiting == set(), f"{len(waiting)} of {len(ordinary)} partitions did not answer an ordinary command"
    print(f"\nhostile burst: {len(sent)} messages of {len({h.kind for h in sent.values()})} kinds; parked {len(parked)} ({dict(Counter(parked.values()))}), refused {len(refused_ids)}")
    print(f"ordinary commands answered after the burst in at most {max(answered.values()):.1f} s")

    for name, service in services.items():
        assert httpx.get(service.health_url, timeout=5).status_code == 200, f"{name}: {service.health_url}"
    before = {name: _cpu_seconds(s.pid) for name, s in services.items()}
    await asyncio.sleep(10)
    busy = {name: round((_cpu_seconds(s.pid) - before[name]) / 10 * 100, 1) for name, s in services.items()}
    print(f"CPU % of a core per service over 10 s after the burst: {busy}")  # reported, not asserted (shared machines)
