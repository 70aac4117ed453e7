"""Where tests find Kafka and a MongoDB-protocol store: the environment, Docker, or embedded servers."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ferretdb import FerretDBServer
from .install import install_all, missing_tools
from .kafka import KafkaServer, scram_options
from .net import free_port
from .paths import StackPaths
from .secrets import kafka_identity, kafka_password_variables, new_kafka_passwords

#: Images used when a Docker engine answers. testcontainers' KafkaContainer drives Confluent's image
#: (KRaft mode); MongoDB matches deploy/docker-compose.yml.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
MONGODB_IMAGE = "mongo:8.0"


@dataclass(frozen=True)
class Infra:
    """Connection settings of the broker and the store one test session uses."""

    kafka_bootstrap: str
    mongodb_uri: str
    source: str
    """``env``, ``docker`` or ``embedded``."""
    kafka_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    """principal -> SASL/SCRAM password; empty when the cluster runs without security (PLAINTEXT).
    The embedded broker always has them; an env cluster has them when JMO_KAFKA_PASSWORD_JMO_ADMIN
    (and the others, ``python -m jmo_devstack secrets``) are set; Docker's never."""

    @property
    def secured(self) -> bool:
        return bool(self.kafka_passwords)

    def kafka_options(self, principal: str) -> dict[str, Any]:
        """aiokafka keyword arguments to connect as ``principal`` (none without security)."""
        return scram_options(principal, self.kafka_passwords[principal]) if self.secured else {}

    def admin_options(self) -> dict[str, Any]:
        from .acls import ADMIN

        return self.kafka_options(ADMIN)

    def kafka_env(self, principal: str) -> dict[str, str]:
        """Environment of a process running as ``principal`` (a service): JMO_KAFKA_USERNAME/PASSWORD."""
        return kafka_identity(principal, self.kafka_passwords[principal]) if principal in self.kafka_passwords else {}

    def kafka_tool_env(self, *principals: str) -> dict[str, str]:
        """Environment of a tool acting as several principals (the jmo CLI): JMO_KAFKA_PASSWORD_<P> for
        each of ``principals`` (default: every one but the admin)."""
        from .acls import principals as every

        variables = kafka_password_variables()
        return {variables[p]: self.kafka_passwords[p] for p in (principals or every())} if self.secured else {}


def docker_available() -> bool:
    """True if a Docker engine answers a ping (within a few seconds)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no permission: all mean "no Docker"
        return False


@contextmanager
def provide_infra(workdir: Path, environ: Mapping[str, str] = os.environ) -> Iterator[Infra]:
    """Yield an ``Infra``, stopping whatever was started for it on exit.

    Resolution: KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI if both are set; else testcontainers' Kafka
    and MongoDB when a Docker engine answers; else Kafka and FerretDB from .local/ on free loopback
    ports with their data in ``workdir``. ``JMO_TEST_INFRA=env|docker|embedded`` forces a choice.
    """
    forced = environ.get("JMO_TEST_INFRA", "").strip().lower()
    kafka, mongo = environ.get("KAFKA_BOOTSTRAP_SERVERS"), environ.get("MONGODB_URI")
    if forced not in ("", "env", "docker", "embedded"):
        raise ValueError(f"JMO_TEST_INFRA={forced!r}; expected env, docker or embedded")
    if forced == "env" or (not forced and kafka and mongo):
        if not (kafka and mongo):
            raise RuntimeError("JMO_TEST_INFRA=env needs both KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI")
        variables = kafka_password_variables()
        passwords = {p: environ[v] for p, v in variables.items() if environ.get(v)}
        yield Infra(kafka, mongo, "env", passwords if len(passwords) == len(variables) else {})
    elif forced == "docker" or (not forced and docker_available()):
        with _containers() as infra:
            yield infra
    else:
        with _embedded(workdir) as infra:
            yield infra


@contextmanager
def _containers() -> Iterator[Infra]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka, MongoDbContainer(MONGODB_IMAGE) as mongo:
        yield Infra(kafka.get_bootstrap_server(), mongo.get_connection_url(), "docker")


@contextmanager
def _embedded(workdir: Path) -> Iterator[Infra]:
    paths = StackPaths.discover()
    if missing_tools(paths):
        install_all(paths)
    passwords = new_kafka_passwords()
    kafka = KafkaServer(workdir / "kafka", free_port(), free_port(), paths=paths, die_with_parent=True, users=passwords)
    ferretdb = FerretDBServer(workdir / "ferretdb", free_port(), paths=paths, die_with_parent=True)
    with ExitStack() as stack:
        ferretdb.start()
        stack.callback(ferretdb.stop)
        kafka.start()
        stack.callback(kafka.stop)
        yield Infra(kafka.bootstrap, ferretdb.uri, "embedded", passwords)
