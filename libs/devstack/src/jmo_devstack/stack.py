"""``make up`` / ``down`` / ``status`` / ``reset``: Kafka, FerretDB and the five services on loopback."""

from __future__ import annotations

import sys

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from .ferretdb import FerretDBServer
from .kafka import KafkaServer
from .net import NotReady, health_ok, run_sync
from .paths import StackPaths
from .processes import tail
from .secrets import kafka_identity, kafka_password_variables, local_kafka_passwords, local_secrets
from .services import SERVICE_PORTS, Command, ServiceProcess, python_module_command, service_env, template_command
from .kafka import scram_options
from .topics import prepare_cluster


T = TypeVar("T")


class StackError(RuntimeError):
    """Bringing the stack up failed; the message says what and where to look."""


@dataclass(frozen=True)
class StackConfig:
    """Ports and choices of the local stack, read from the environment by ``from_env``.

    ``kafka_bootstrap`` / ``mongodb_uri`` name external servers (KAFKA_BOOTSTRAP_SERVERS,
    MONGODB_URI); when unset the stack runs its own Kafka and FerretDB.
    """

    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    ferretdb_port: int = 27017
    health_ports: Mapping[str, int] = field(default_factory=lambda: dict(SERVICE_PORTS))
    topic_prefix: str = ""
    kafka_bootstrap: str | None = None
    mongodb_uri: str | None = None
    service_command: str | None = None
    health_timeout: float = 120.0
    smtp_sink_port: int = 2525
    sms_sink_port: int = 8086

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StackConfig:
        """KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI, JMO_TOPIC_PREFIX and the JMO_DEVSTACK_* overrides."""
        base = environ.get("JMO_DEVSTACK_HEALTH_PORT_BASE")
        ports = (
            {name: int(base) + i + 1 for i, name in enumerate(SERVICE_PORTS)} if base else dict(SERVICE_PORTS)
        )
        return cls(
            kafka_port=int(environ.get("JMO_DEVSTACK_KAFKA_PORT", 9092)),
            kafka_controller_port=int(environ.get("JMO_DEVSTACK_KAFKA_CONTROLLER_PORT", 9093)),
            ferretdb_port=int(environ.get("JMO_DEVSTACK_FERRETDB_PORT", 27017)),
            health_ports=ports,
            topic_prefix=environ.get("JMO_TOPIC_PREFIX", ""),
            kafka_bootstrap=environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            mongodb_uri=environ.get("MONGODB_URI") or None,
            service_command=environ.get("JMO_DEVSTACK_SERVICE_COMMAND") or None,
            health_timeout=float(environ.get("JMO_DEVSTACK_HEALTH_TIMEOUT", 120)),
            smtp_sink_port=int(environ.get("JMO_DEVSTACK_SMTP_SINK_PORT", 2525)),
            sms_sink_port=int(environ.get("JMO_DEVSTACK_SMS_SINK_PORT", 8086)),
        )


class Stack:
    """The processes of one checkout's local stack, found again through their pid files."""

    def __init__(
        self,
        paths: StackPaths | None = None,
        config: StackConfig | None = None,
        console: Console | None = None,
        command: Command | None = None,
    ) -> None:
        self.paths = paths or StackPaths.discover()
        self.config = config or StackConfig.from_env()
        self.console = console or Console(width=None if sys.stdout.isatty() else 140)
        if command is None:
            python = self.paths.python
            template = self.config.service_command
            command = template_command(template, python) if template else python_module_command(python)
        self.command = command
        run = self.paths.run
        self.kafka = KafkaServer(
            self.paths.state / "kafka",
            self.config.kafka_port,
            self.config.kafka_controller_port,
            paths=self.paths,
            pid_file=run / "kafka.pid",
            users=None if self.config.kafka_bootstrap else self.kafka_passwords,
        )
        self.ferretdb = FerretDBServer(
            self.paths.state / "ferretdb", self.config.ferretdb_port, paths=self.paths, pid_file=run / "ferretdb.pid"
        )

    @property
    def secrets_path(self) -> Path:
        return self.paths.state / "secrets.json"

    @property
    def kafka_passwords(self) -> dict[str, str]:
        """principal -> SASL/SCRAM password: the local secrets for the embedded broker; for an external
        one (KAFKA_BOOTSTRAP_SERVERS) the JMO_KAFKA_PASSWORD_<PRINCIPAL> variables if all are set,
        else none (PLAINTEXT)."""
        if not self.config.kafka_bootstrap:
            return local_kafka_passwords(self.secrets_path)
        variables = kafka_password_variables()
        found = {p: os.environ[v] for p, v in variables.items() if os.environ.get(v)}
        return found if len(found) == len(variables) else {}

    def kafka_admin_options(self) -> dict:
        from .acls import ADMIN

        passwords = self.kafka_passwords
        return scram_options(ADMIN, passwords[ADMIN]) if passwords else {}

    @property
    def kafka_bootstrap(self) -> str:
        return self.config.kafka_bootstrap or self.kafka.bootstrap

    @property
    def mongodb_uri(self) -> str:
        return self.config.mongodb_uri or self.ferretdb.uri

    @property
    def inbox_path(self) -> Path:
        """Where the local sinks keep the messages the notification service delivered (JSON lines)."""
        return self.paths.state / "inbox" / "messages.jsonl"

    def sinks(self) -> ServiceProcess:
        """The local SMTP + SMS sinks (``jmo_devstack.sinks``) the notification service delivers to."""
        argv = [self.paths.python, "-m", "jmo_devstack.sinks", "--smtp-port", str(self.config.smtp_sink_port),
                "--http-port", str(self.config.sms_sink_port), "--inbox", str(self.inbox_path)]
        return ServiceProcess("sinks", argv, env=dict(os.environ), health_port=self.config.sms_sink_port,
                              log_path=self.paths.logs / "sinks.log", pid_file=self.paths.run / "sinks.pid", cwd=self.paths.root)

    def services(self) -> dict[str, ServiceProcess]:
        """The five services as this stack runs them (whether or not they run now)."""
        delivery = {"JMO_SMTP_HOST": "127.0.0.1", "JMO_SMTP_PORT": str(self.config.smtp_sink_port), "JMO_SMTP_TLS": "none",
                    "JMO_SMS_URL": f"http://127.0.0.1:{self.config.sms_sink_port}/messages"}
        env = service_env(self.kafka_bootstrap, self.mongodb_uri, self.config.topic_prefix, {**delivery, **local_secrets(self.secrets_path)})
        passwords = self.kafka_passwords
        return {
            name: ServiceProcess(
                name,
                self.command(name),
                env={**env, **(kafka_identity(name, passwords[name]) if passwords else {})},
                health_port=port,
                log_path=self.paths.logs / f"{name}.log",
                pid_file=self.paths.run / f"{name}.pid",
                cwd=self.paths.root,
            )
            for name, port in self.config.health_ports.items()
        }

    # --- up ---------------------------------------------------------------------------------

    def up(self, *, with_services: bool = True) -> None:
        """Start whatever is not running yet, create the topics, wait for every /health. Idempotent."""
        for directory in (self.paths.state, self.paths.logs, self.paths.run):
            directory.mkdir(parents=True, exist_ok=True)
        self._start_infra()
        with self.console.status(f"Creating topics (prefix {self.config.topic_prefix!r}) ..."):
            try:
                names = run_sync(prepare_cluster(self.kafka_bootstrap, self.config.topic_prefix, client_options=self.kafka_admin_options()))
            except Exception as exc:  # connection, authorisation, broker errors: all end `up` the same way
                raise StackError(f"could not create the topics on {self.kafka_bootstrap}: {exc!r}") from exc
        secured = "with SASL/SCRAM and ACLs per principal" if self.kafka_passwords else "PLAINTEXT, no ACLs"
        self.console.print(f"[green]✓[/] {len(names)} topics present on {self.kafka_bootstrap} ({secured})")
        if with_services:
            self._start_services()
        self.console.print(self.status_table())

    def _start_infra(self) -> None:
        if self.config.kafka_bootstrap:
            self.console.print(f"[cyan]•[/] Kafka: using {self.config.kafka_bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
        else:
            with self.console.status(f"Starting Kafka on {self.kafka.bootstrap} ..."):
                started = self._checked(self.kafka.start, "Kafka")
            self.console.print(f"[green]✓[/] Kafka {'started' if started else 'already running'} on {self.kafka.bootstrap}")
        if self.config.mongodb_uri:
            self.console.print(f"[cyan]•[/] Store: using {self.config.mongodb_uri} (MONGODB_URI)")
        else:
            with self.console.status(f"Starting FerretDB on {self.ferretdb.uri} ..."):
                started = self._checked(self.ferretdb.start, "FerretDB")
            self.console.print(f"[green]✓[/] FerretDB {'started' if started else 'already running'} on {self.ferretdb.uri}")

    @staticmethod
    def _checked(start: Callable[[], T], what: str) -> T:
        try:
            return start()
        except (NotReady, FileNotFoundError) as exc:
            raise StackError(f"{what} did not start: {exc}") from None

    def _start_services(self) -> None:
        sinks = self.sinks()
        if sinks.running:
            self.console.print(f"[cyan]•[/] sinks already running (pid {sinks.pid})")
        else:
            self._checked(lambda: sinks.start(wait_healthy=True, timeout=30), "sinks")
            self.console.print(f"[green]✓[/] SMTP sink on 127.0.0.1:{self.config.smtp_sink_port}, SMS sink on {sinks.health_url.removesuffix('/health')}")
        services = self.services()
        for svc in services.values():
            if svc.running:
                self.console.print(f"[cyan]•[/] {svc.name} already running (pid {svc.pid})")
            else:
                self._checked(lambda svc=svc: svc.start(wait_healthy=False), svc.name)
        deadline = time.monotonic() + self.config.health_timeout
        pending = dict(services)
        with self.console.status("Waiting for /health of the services ...") as status:
            while pending:
                for name, svc in list(pending.items()):
                    if health_ok(svc.health_url, timeout=1.0):
                        self.console.print(f"[green]✓[/] {name} healthy at {svc.health_url}")
                        del pending[name]
                    elif not svc.running:
                        self._fail(svc, "exited while starting")
                if pending and time.monotonic() > deadline:
                    self._fail(next(iter(pending.values())), f"not healthy after {self.config.health_timeout:.0f}s")
                status.update(f"Waiting for /health of {', '.join(pending)} ...")
                time.sleep(0.3)

    def _fail(self, svc: ServiceProcess, why: str) -> None:
        raise StackError(
            f"service {svc.name} {why} ({svc.health_url}).\n"
            f"--- last lines of {svc.log_path} ---\n{tail(svc.log_path)}\n"
            "The rest of the stack is left running; `make down` stops it."
        )

    # --- down / status / reset ---------------------------------------------------------------

    def down(self) -> None:
        """Stop the processes this stack started (services first, then Kafka, then FerretDB), by pid."""
        stopped = 0
        for svc in reversed(list(self.services().values())):
            if svc.stop():
                stopped += 1
                self.console.print(f"[yellow]■[/] stopped {svc.name}")
        if self.sinks().stop():
            stopped += 1
            self.console.print("[yellow]■[/] stopped sinks")
        for name, server in (("Kafka", self.kafka), ("FerretDB", self.ferretdb)):
            with self.console.status(f"Stopping {name} ..."):
                was_running = server.stop()
            if was_running:
                stopped += 1
                self.console.print(f"[yellow]■[/] stopped {name}")
        if not stopped:
            self.console.print("Nothing was running.")

    def reset(self) -> None:
        """``down``, then delete the stack's state (Kafka and FerretDB data) and logs."""
        self.down()
        for directory in (self.paths.state, self.paths.logs):
            shutil.rmtree(directory, ignore_errors=True)
        self.console.print(f"[yellow]✗[/] removed {self.paths.state} and {self.paths.logs}")

    def _show(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def status_table(self) -> Table:
        """Where everything is and whether it runs."""
        table = Table(title="JMO local stack", title_justify="left")
        for column in ("component", "state", "pid", "address", "log"):
            table.add_column(column, no_wrap=column != "log", overflow="fold")

        def state(running: bool, healthy: bool | None = None) -> str:
            if not running:
                return "[red]stopped[/]"
            return "[green]running[/]" if healthy in (None, True) else "[yellow]running, unhealthy[/]"

        if self.config.kafka_bootstrap:
            table.add_row("Kafka", "[cyan]external[/]", "", self.config.kafka_bootstrap, "")
        else:
            rec = self.kafka.record()
            table.add_row("Kafka", state(rec is not None), str(rec.pid) if rec else "", self.kafka.bootstrap,
                          self._show(self.kafka.log_path))
        if self.config.mongodb_uri:
            table.add_row("Store", "[cyan]external[/]", "", self.config.mongodb_uri, "")
        else:
            rec = self.ferretdb.record()
            table.add_row("Store (FerretDB)", state(rec is not None), str(rec.pid) if rec else "", self.ferretdb.uri,
                          self._show(self.ferretdb.log_path))
        for svc in [self.sinks(), *self.services().values()]:
            rec = svc.record()
            healthy = health_ok(svc.health_url, timeout=1.0) if rec else None
            table.add_row(svc.name, state(rec is not None, healthy), str(rec.pid) if rec else "", svc.health_url,
                          self._show(svc.log_path))
        return table
