"""The embedded stack's pieces against real Kafka and the real store (from the ``infra`` fixture)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from jmo_contracts.topics import all_topics
from jmo_devstack.kafka import metadata_answers

pytestmark = pytest.mark.integration

FAKE_SERVICE = textwrap.dedent(
    """
    import http.server, os, sys

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/health"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"")

        def log_message(self, *args):
            pass

    print("fake", sys.argv[1], "prefix", os.environ["JMO_TOPIC_PREFIX"], "db", os.environ["JMO_DATABASE_PREFIX"], flush=True)
    http.server.HTTPServer(("127.0.0.1", int(os.environ["JMO_HEALTH_PORT"])), Health).serve_forever()
    """
)


@pytest.fixture
def service_command(tmp_path: Path):
    script = tmp_path / "fake_service.py"
    script.write_text(FAKE_SERVICE)
    return lambda name: [sys.executable, str(script), name]


async def test_kafka_answers_metadata_and_has_every_topic(infra, topics):
    assert await metadata_answers(infra.kafka_bootstrap, client_options=infra.admin_options())
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap, **infra.admin_options())
    await admin.start()
    try:
        present = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {spec.name for spec in all_topics(topics)} <= present


async def test_store_answers_ping_and_keeps_a_document(infra, database_prefix):
    client = AsyncMongoClient(infra.mongodb_uri, serverSelectionTimeoutMS=5000)
    try:
        assert (await client.admin.command("ping"))["ok"] == 1
        collection = client[f"{database_prefix}devstack"]["probe"]
        await collection.insert_one({"_id": "probe", "n": 1})
        assert await collection.find_one({"_id": "probe"}) == {"_id": "probe", "n": 1}
    finally:
        await client.close()


def test_service_runner_restarts_a_service_with_the_same_settings(service_runner, topic_prefix, database_prefix):
    service = service_runner("profile-update")
    first_pid = service.pid

    service.restart()

    assert service.pid != first_pid
    assert service.healthy()
    assert service.read_log().count(f"fake profile-update prefix {topic_prefix} db {database_prefix}") == 2


def test_service_runner_kill_leaves_no_process(service_runner):
    service = service_runner("notification")
    service.kill()
    assert not service.running
    assert not service.healthy()
