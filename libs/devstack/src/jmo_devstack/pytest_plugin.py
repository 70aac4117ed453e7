"""Pytest fixtures giving tests real infrastructure, lazily (a unit test starts nothing).

Registered for the whole repository by the root ``conftest.py``. Fixtures:

- ``infra`` (session): ``.kafka_bootstrap``, ``.mongodb_uri`` — see ``jmo_devstack.infra.provide_infra``.
- ``run_id`` (session): unique per session, e.g. ``t3f9a1c2e``.
- ``topic_prefix`` (session): ``f"{run_id}."``; ``database_prefix`` (session): ``f"{run_id}_"``.
- ``topics`` (session): creates ``all_topics(topic_prefix)`` on ``infra`` and, on a secured cluster,
  the ACLs of every principal for them (``jmo_devstack.acls``); returns the prefix.
- ``service_command`` (function): name -> argv, default ``[sys.executable, "-m", "jmo_<name>"]``;
  override it in a conftest to run something else.
- ``service_runner`` (function): ``start(name, extra_env=None, *, wait_healthy=True) -> ServiceProcess``;
  each service runs as its own Kafka principal; everything it started is stopped at teardown.
  Starting a name again starts another instance (same consumer group ``jmo-<name>``, its own free
  health port, log ``<name>-<n>.log``); ``ServiceProcess.kill()`` SIGKILLs one of them.

Clients a test creates itself authenticate with ``infra.kafka_options(principal)`` (aiokafka keyword
arguments; empty on a cluster without security), e.g. ``infra.kafka_options("gateway")``.
- ``sinks`` (function): the local SMTP and SMS sinks (``jmo_devstack.sinks``) on free ports; ``.env``
  points the notification service at them, ``.messages()`` reads what arrived, ``.fault()`` breaks them.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .infra import Infra, provide_infra
from .net import free_port, run_sync
from .processes import tail
from .secrets import new_keys
from .services import Command, ServiceProcess, module_name, service_env
from .topics import prepare_cluster


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Kafka and a MongoDB-protocol store for this session (env, Docker, or embedded)."""
    with provide_infra(tmp_path_factory.mktemp("infra")) as resolved:
        yield resolved


@pytest.fixture(scope="session")
def run_id() -> str:
    """A name unique to this test session: ``t`` and 8 hex digits."""
    return "t" + secrets.token_hex(4)


@pytest.fixture(scope="session")
def topic_prefix(run_id: str) -> str:
    """The prefix of every topic this session uses (JMO_TOPIC_PREFIX)."""
    return f"{run_id}."


@pytest.fixture(scope="session")
def database_prefix(run_id: str) -> str:
    """The prefix of every database this session uses (JMO_DATABASE_PREFIX)."""
    return f"{run_id}_"


@pytest.fixture(scope="session")
def topics(infra: Infra, topic_prefix: str) -> str:
    """Create every topic of the system under ``topic_prefix`` on ``infra`` (and their ACLs); return the prefix."""
    run_sync(prepare_cluster(infra.kafka_bootstrap, topic_prefix, client_options=infra.admin_options()))
    return topic_prefix


@pytest.fixture
def service_command() -> Command:
    """How ``service_runner`` runs a service by name; override to run a fake."""
    return lambda name: [sys.executable, "-m", module_name(name)]


class ServiceRunner:
    """Starts services as processes for one test and stops them all afterwards."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, command: Command, identity: Callable[[str], Mapping[str, str]] | None = None) -> None:
        self.env = dict(env)
        self.identity = identity or (lambda _name: {})
        self.log_dir = log_dir
        self.command = command
        self.started: list[ServiceProcess] = []

    def __call__(
        self,
        name: str,
        extra_env: Mapping[str, str] | None = None,
        *,
        wait_healthy: bool = True,
        timeout: float = 60.0,
    ) -> ServiceProcess:
        """Start service ``name`` (e.g. ``profile-update``) on a free health port; wait for /health 200."""
        index = sum(1 for p in self.started if p.name == name)
        proc = ServiceProcess(
            name,
            self.command(name),
            env={**self.env, **self.identity(name), **(extra_env or {})},
            health_port=free_port(),
            log_path=self.log_dir / (f"{name}.log" if index == 0 else f"{name}-{index}.log"),
            die_with_parent=True,
        )
        self.started.append(proc)
        return proc.start(wait_healthy=wait_healthy, timeout=timeout)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()


@pytest.fixture
async def mongo_client(infra: Infra) -> AsyncIterator[Any]:
    """A PyMongo async client of ``infra``'s store, closed after the test (time-outs bounded at 20 s)."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, socketTimeoutMS=20_000, serverSelectionTimeoutMS=20_000)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def service_keys() -> dict[str, str]:
    """Keys the services of this session run with (fresh each session; tests may use them to
    open what the services sealed, as the notification service would)."""
    return new_keys()


@pytest.fixture
def service_runner(
    infra: Infra, topics: str, database_prefix: str, tmp_path: Path, service_command: Command, service_keys: dict[str, str]
) -> Iterator[ServiceRunner]:
    """A factory starting services against ``infra`` with this session's topic and database prefixes."""
    env = service_env(infra.kafka_bootstrap, infra.mongodb_uri, topics, {"JMO_DATABASE_PREFIX": database_prefix, **service_keys})
    runner = ServiceRunner(env, tmp_path / "services", service_command, identity=infra.kafka_env)
    yield runner
    runner.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """When a test that started services fails, show the end of each service's log in the report."""
    report = yield
    runner = getattr(item, "funcargs", {}).get("service_runner")
    if report.when == "call" and report.failed and isinstance(runner, ServiceRunner):
        for proc in runner.started:
            report.sections.append((f"service {proc.name} log ({proc.log_path})", tail(proc.log_path, 60)))
    return report


class Sinks:
    """The local SMTP and SMS sinks of one test (a process), read and steered over HTTP.

    They keep their inbox where ``make up``'s would be under ``home`` (JMO_DEVSTACK_HOME), so
    ``jmo dev inbox`` run with that home reads it, as :meth:`inbox_cli` does.
    """

    def __init__(self, process: ServiceProcess, smtp_port: int, http_port: int, home: Path) -> None:
        self.process = process
        self.smtp_port = smtp_port
        self.url = f"http://127.0.0.1:{http_port}"
        self.home = home

    @property
    def env(self) -> dict[str, str]:
        """What the notification service needs to deliver here."""
        return {"JMO_SMTP_HOST": "127.0.0.1", "JMO_SMTP_PORT": str(self.smtp_port), "JMO_SMTP_TLS": "none", "JMO_SMS_URL": f"{self.url}/messages"}

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Everything delivered so far (oldest first), optionally only to ``to``."""
        import httpx

        return httpx.get(f"{self.url}/messages", params={"to": to} if to else None, timeout=5).json()

    def requests(self) -> dict[str, int]:
        """How many deliveries each channel was asked for (including refused and duplicate ones)."""
        import httpx

        return httpx.get(f"{self.url}/requests", timeout=5).json()

    def fault(self, channel: str, **spec: object) -> None:
        """``fail_next=N, status=500`` / ``always=400`` / ``clear=True`` for ``channel`` (email or sms)."""
        import httpx

        httpx.post(f"{self.url}/faults", json={"channel": channel, **spec}, timeout=5).raise_for_status()

    def inbox_cli(self, *args: str) -> Any:
        """``jmo dev inbox *args`` against this inbox, parsed from its JSON output."""
        import json
        import subprocess

        jmo = Path(sys.executable).parent / "jmo"
        out = subprocess.run([str(jmo), "dev", "inbox", *args], env={**os.environ, "JMO_DEVSTACK_HOME": str(self.home)}, capture_output=True, text=True, check=True, timeout=60)
        return json.loads(out.stdout)


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[Sinks]:
    """The local SMTP + SMS sinks on free loopback ports, fresh (empty) for each test."""
    smtp_port, http_port = free_port(), free_port()
    home = tmp_path / "devstack-home"
    proc = ServiceProcess(
        "sinks",
        [sys.executable, "-m", "jmo_devstack.sinks", "--smtp-port", str(smtp_port), "--http-port", str(http_port),
         "--inbox", str(home / "state" / "inbox" / "messages.jsonl")],
        env=dict(os.environ),
        health_port=http_port,
        log_path=tmp_path / "sinks.log",
        die_with_parent=True,
    )
    proc.start(wait_healthy=True, timeout=30)
    yield Sinks(proc, smtp_port, http_port, home)
    proc.stop()
