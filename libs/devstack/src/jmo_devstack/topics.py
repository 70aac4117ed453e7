"""Explicit creation of the system's Kafka topics (brokers run with auto-create off)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

if TYPE_CHECKING:
    from jmo_contracts.topics import TopicSpec

TOPIC_ALREADY_EXISTS = 36


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic."""


async def create_topics(
    bootstrap: str,
    prefix: str = "",
    *,
    replication_factor: int = 1,
    specs: list[TopicSpec] | None = None,
    timeout: float = 60.0,
    client_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create every topic of ``all_topics(prefix)`` (or ``specs``) on ``bootstrap``; return their names.

    Topics that already exist are left as they are. Returns once every topic is visible in the
    cluster metadata with a leader for each partition. ``client_options`` authenticate (the admin).
    """
    if specs is None:
        from jmo_contracts.topics import all_topics

        specs = all_topics(prefix)
    wanted = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication_factor, topic_configs=s.config())
        for s in specs
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **(client_options or {}))
    await admin.start()
    try:
        response = await admin.create_topics(wanted)
        failed = [
            f"{name}: error {code} {rest[0] if rest else ''}".strip()
            for name, code, *rest in response.topic_errors
            if code not in (0, TOPIC_ALREADY_EXISTS)
        ]
        if failed:
            raise TopicCreationError("could not create topics: " + "; ".join(failed))
        await _wait_visible(admin, {s.name: s.partitions for s in specs}, timeout)
    finally:
        await admin.close()
    return [s.name for s in specs]


async def _wait_visible(admin: AIOKafkaAdminClient, partitions: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(list(partitions))
        ready = {
            t["topic"]
            for t in described
            if t["error_code"] == 0 and all(p["leader"] >= 0 for p in t["partitions"]) and t["partitions"]
        }
        missing = sorted(set(partitions) - ready)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TopicCreationError(f"topics not visible after {timeout:.0f}s: {missing}")
        await asyncio.sleep(0.2)


def topic_names(prefix: str = "") -> list[str]:
    """The names ``create_topics`` would create for ``prefix``."""
    from jmo_contracts.topics import all_topics

    return [s.name for s in all_topics(prefix)]


async def grant_acls(bootstrap: str, prefix: str, client_options: Mapping[str, Any], *, timeout: float = 30.0) -> int:
    """Create the ACLs of every principal for the topics named with ``prefix`` (see ``acls``), as the admin."""
    from .acls import apply_acls, derive_acls

    return await apply_acls(bootstrap, derive_acls(prefix), client_options, timeout=timeout)


async def prepare_cluster(bootstrap: str, prefix: str = "", *, client_options: Mapping[str, Any] | None = None, replication_factor: int = 1) -> list[str]:
    """Create the topics, and with ``client_options`` (a secured cluster's admin) their ACLs."""
    names = await create_topics(bootstrap, prefix, replication_factor=replication_factor, client_options=client_options)
    if client_options:
        await grant_acls(bootstrap, prefix, client_options)
    return names


async def existing_topics(bootstrap: str, client_options: Mapping[str, Any] | None = None) -> list[str]:
    """Every topic name in the cluster at ``bootstrap``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_options or {}))
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


async def committed_offsets(bootstrap: str, group: str, client_options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Per topic, the sum over its partitions of the offsets ``group`` committed (0 for a partition
    with none): how many of each topic's messages the group has finished. For tests and checks."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_options or {}))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    out: dict[str, int] = {}
    for tp, meta in offsets.items():
        out[tp.topic] = out.get(tp.topic, 0) + max(meta.offset, 0)
    return out


async def read_records(bootstrap: str, topic: str, count: int, *, timeout: float = 30.0, client_options: Mapping[str, Any] | None = None) -> list[Any]:
    """The records of ``topic`` from the beginning, once ``count`` are there or after ``timeout`` seconds
    (whatever has come by then); no consumer group, nothing committed. For tests and checks."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", **(client_options or {}))
    await consumer.start()
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            out.extend(r for rs in batches.values() for r in rs)
        return out
    finally:
        await consumer.stop()
