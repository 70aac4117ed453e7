"""A single-node Apache Kafka broker (KRaft) running from the jars in .local/kafka/libs."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from jmo_contracts.topics import PARTITIONS

from .net import LOOPBACK, NotReady, port_open, run_sync, wait_until
from .paths import StackPaths
from .server import ManagedServer

SCRAM = "SCRAM-SHA-512"
DEFAULT_HEAP = "-Xmx512m -Xms256m"
_JVM_OPTS = (
    "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
    "-XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true"
)


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as StorageTool random-uuid)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def scram_options(username: str, password: str) -> dict[str, Any]:
    """aiokafka keyword arguments to authenticate as ``username`` with SASL/SCRAM-SHA-512."""
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": SCRAM, "sasl_plain_username": username, "sasl_plain_password": password}


async def metadata_answers(bootstrap: str, timeout_ms: int = 3000, client_options: Mapping[str, Any] | None = None) -> bool:
    """True if the cluster at ``bootstrap`` answers a metadata request naming at least one broker."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, **(client_options or {}))
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        return bool(metadata.brokers())
    except (KafkaError, OSError):
        return False
    finally:
        await client.close()


class KafkaServer(ManagedServer):
    """One Kafka broker+controller in ``workdir`` listening on 127.0.0.1.

    ``workdir`` holds server.properties, cluster.id, the data (``data/``), the logs (``logs/server.log``,
    configured by deploy/kafka/log4j2.xml) and the pid file. Formatting happens once; later starts
    reuse the data. ``start()`` adopts a broker already running from the same pid file.

    With ``users`` (name -> password, :data:`jmo_devstack.acls.ADMIN` among them) the client listener
    is SASL_PLAINTEXT with SCRAM-SHA-512 only, the users are created when the storage is formatted,
    and KRaft's StandardAuthorizer denies whatever no ACL allows (the admin is the one super user).
    The controller listener (loopback, used by this process only) authenticates with SASL/PLAIN and a
    password drawn anew at each start: KRaft cannot use SCRAM there. server.properties, which holds
    it, is written with mode 0600. Without ``users`` the broker runs PLAINTEXT, as before.
    """

    label = "Kafka"
    stop_timeout = 30.0  # a clean shutdown writes its logs

    def __init__(
        self,
        workdir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        *,
        paths: StackPaths | None = None,
        pid_file: Path | None = None,
        heap_opts: str | None = None,
        die_with_parent: bool = False,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.users = dict(users or {})
        self._controller_password = secrets.token_urlsafe(24)
        self.port = port
        self.controller_port = controller_port
        self.paths = paths or StackPaths.discover()
        self.pid_file = pid_file or self.workdir / "kafka.pid"
        self.heap_opts = heap_opts or os.environ.get("JMO_KAFKA_HEAP_OPTS", DEFAULT_HEAP)
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers string clients use."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def log_path(self) -> Path:
        """The broker's log file."""
        return self.log_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """stdout/stderr of the JVM (errors, JVM crashes)."""
        return self.workdir / "kafka.out"

    @property
    def secured(self) -> bool:
        return bool(self.users)

    def client_options(self, principal: str) -> dict[str, Any]:
        """aiokafka keyword arguments to connect as ``principal`` (none when the broker is PLAINTEXT)."""
        return scram_options(principal, self.users[principal]) if self.secured else {}

    def admin_options(self) -> dict[str, Any]:
        from .acls import ADMIN

        return self.client_options(ADMIN)

    def security_properties(self) -> dict[str, str]:
        """SASL listeners and the authorizer (empty without ``users``)."""
        if not self.secured:
            return {}
        from .acls import ADMIN

        admin_password = self.users[ADMIN]
        ctl = self._controller_password
        return {
            "listeners": f"SASL_PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://{LOOPBACK}:{self.port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM,
            "sasl.mechanism.inter.broker.protocol": SCRAM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
                f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" password="{admin_password}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{ADMIN}" password="{ctl}" user_{ADMIN}="{ctl}";',
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def properties(self) -> dict[str, str]:
        """The broker configuration written to server.properties."""
        return self._plain_properties() | self.security_properties()

    def _plain_properties(self) -> dict[str, str]:
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{LOOPBACK}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(PARTITIONS),  # topics are created with it (auto-creation is off): the default for any other
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }

    def write_config(self) -> Path:
        """Write server.properties (every start, so port changes apply) and return its path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "server.properties"
        lines = ["# written by jmo_devstack.kafka; edits are overwritten on start"]
        lines += [f"{k}={v}" for k, v in self.properties().items()]
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("\n".join(lines) + "\n")
        return path

    @property
    def _users_marker(self) -> Path:
        """Which SCRAM users (and which passwords, by hash) the storage was formatted with."""
        return self.workdir / "scram-users"

    def _users_fingerprint(self) -> str:
        import hashlib

        return "\n".join(f"{name} {hashlib.sha256(pw.encode()).hexdigest()[:16]}" for name, pw in sorted(self.users.items())) + "\n"

    def _java(self, main: str, *args: str) -> list[str]:
        java = Path(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
        return [
            str(java),
            *shlex.split(self.heap_opts),
            *shlex.split(_JVM_OPTS),
            f"-Dlog4j2.configurationFile={self.paths.kafka_log4j}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            f"{self.paths.kafka_libs}/*",
            main,
            *args,
        ]

    def format_storage(self) -> None:
        """Format the KRaft metadata log once (a no-op when data/meta.properties exists)."""
        config = self.write_config()
        if (self.data_dir / "meta.properties").exists():
            formatted_with = self._users_marker.read_text() if self._users_marker.exists() else "\n"
            if formatted_with != (self._users_fingerprint() if self.secured else "\n"):
                raise NotReady(
                    f"the Kafka data in {self.data_dir} was formatted with other SASL users or passwords than "
                    "the local secrets now hold (or without security); `make reset` formats it anew"
                )
            return
        id_file = self.workdir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id() + "\n")
        scram = [arg for name, pw in sorted(self.users.items()) for arg in ("--add-scram", f"{SCRAM}=[name={name},password={pw}]")]
        cmd = self._java(
            "kafka.tools.StorageTool", "format", "-c", str(config),
            "-t", id_file.read_text().strip(), "--ignore-formatted", *scram,
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
        if self.secured:
            self._users_marker.write_text(self._users_fingerprint())

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker and wait until it answers metadata requests. False if it already ran."""
        if not any(self.paths.kafka_libs.glob("kafka_2.13-*.jar")):
            raise FileNotFoundError(f"no Kafka jars in {self.paths.kafka_libs}; run `make install`")
        cmd = self._java("kafka.Kafka", str(self.workdir / "server.properties"))
        identity = [*cmd, self.properties()["listeners"]]  # the ports live in server.properties
        return self._launch(cmd, identity=identity, ports=[self.port, self.controller_port], output=self.console_log, timeout=timeout, prepare=self.format_storage)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until the broker answers a metadata request."""
        wait_until(
            lambda: port_open(LOOPBACK, self.port) and run_sync(metadata_answers(self.bootstrap, client_options=self.admin_options())),
            timeout=timeout,
            what=f"Kafka on {self.bootstrap}",
            alive=lambda: self.running,
            interval=0.5,
        )
