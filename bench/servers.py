"""The broker and the store the benchmark talks to: from the environment, or embedded and temporary."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jmo_devstack.infra import Infra, provide_infra
from jmo_devstack.topics import create_topics


@contextmanager
def servers() -> Iterator[Infra]:
    """KAFKA_BOOTSTRAP_SERVERS + MONGODB_URI if both are set, else a fresh embedded Kafka and FerretDB.

    Embedded servers run on free loopback ports with their data in a temporary directory; both
    are stopped and the directory removed on exit.
    """
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URI")
    if kafka and mongo:
        with provide_infra(Path("."), {"JMO_TEST_INFRA": "env", "KAFKA_BOOTSTRAP_SERVERS": kafka, "MONGODB_URI": mongo}) as infra:
            yield infra
        return
    with tempfile.TemporaryDirectory(prefix="jmo-bench-") as workdir:
        with provide_infra(Path(workdir), {"JMO_TEST_INFRA": "embedded"}) as infra:
            yield infra


@dataclass(frozen=True)
class _Topic:
    """What :func:`jmo_devstack.topics.create_topics` needs to know about a topic."""

    name: str
    partitions: int

    def config(self) -> dict[str, str]:
        return {}


async def create_topic(bootstrap: str, name: str, partitions: int, kafka_options: dict | None = None) -> None:
    """Create one topic (auto-create is off) and wait until every partition has a leader."""
    await create_topics(bootstrap, specs=[_Topic(name, partitions)], client_options=kafka_options)  # type: ignore[list-item]


async def delete_topics(bootstrap: str, names: list[str], kafka_options: dict | None = None) -> None:
    """Best-effort removal of the benchmark's topics (matters when the servers are not ours)."""
    from aiokafka.admin import AIOKafkaAdminClient

    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(kafka_options or {}))
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()
