"""A single-node Apache Kafka broker (KRaft) running from the jars in .local/kafka/libs."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import uuid
from pathlib import Path

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from .net import LOOPBACK, port_open, run_sync, wait_until
from .paths import StackPaths
from .server import ManagedServer

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


async def metadata_answers(bootstrap: str, timeout_ms: int = 3000) -> bool:
    """True if the cluster at ``bootstrap`` answers a metadata request naming at least one broker."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
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
    ) -> None:
        self.workdir = Path(workdir)
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

    def properties(self) -> dict[str, str]:
        """The broker configuration written to server.properties."""
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
            "num.partitions": "3",
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
        path.write_text("\n".join(lines) + "\n")
        return path

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
            return
        id_file = self.workdir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id() + "\n")
        cmd = self._java(
            "kafka.tools.StorageTool", "format", "-c", str(config),
            "-t", id_file.read_text().strip(), "--ignore-formatted",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")

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
            lambda: port_open(LOOPBACK, self.port) and run_sync(metadata_answers(self.bootstrap)),
            timeout=timeout,
            what=f"Kafka on {self.bootstrap}",
            alive=lambda: self.running,
            interval=0.5,
        )
