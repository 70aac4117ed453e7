"""The five JMO services as child processes, each with its own health port and log file."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .net import LOOPBACK, NotReady, health_ok, wait_until
from .processes import PidRecord, kill, spawn, tail, terminate

#: Service names (as in the contracts) and the health port ``make up`` gives each.
SERVICE_PORTS: dict[str, int] = {
    "registration": 8081,
    "identity": 8082,
    "biometric": 8083,
    "profile-update": 8084,
    "notification": 8085,
}

#: Builds the argv that runs a service, from its name.
Command = Callable[[str], list[str]]


def module_name(service: str) -> str:
    """The Python module of ``service``: ``profile-update`` -> ``jmo_profile_update``."""
    return "jmo_" + service.replace("-", "_")


def python_module_command(python: str = sys.executable) -> Command:
    """The default way to run a service: ``<python> -m jmo_<service>``."""
    return lambda service: [python, "-m", module_name(service)]


def template_command(template: str, python: str = sys.executable) -> Command:
    """A command from a template such as ``"{python} -m {module}"`` ({python}, {module}, {service})."""
    return lambda service: [
        part.format(python=python, module=module_name(service), service=service) for part in shlex.split(template)
    ]



def mentions(value: str, text: str) -> bool:
    """Whether ``value`` stands in ``text`` as a token of its own, not inside a longer one.

    Searching logs for a leaked personal value by plain substring fails by chance for short
    numeric values: a six-digit OTP code "appears" inside a hex message id or the microseconds of
    a timestamp (``22.646889Z``). A value that really leaked stands between quotes, spaces, ``=``
    or ``:``, so it is still found.
    """
    return re.search(rf"(?<![0-9A-Za-z.]){re.escape(value)}(?![0-9A-Za-z])", text) is not None

class ServiceProcess:
    """One service process: started with ``env`` plus ``JMO_HEALTH_PORT``, logging to ``log_path``.

    ``health_url`` is ``http://127.0.0.1:<health_port>/health``. ``stop()`` sends SIGTERM and waits,
    ``kill()`` sends SIGKILL, ``restart()`` stops and starts it again with the same settings.
    With a ``pid_file`` the process can be found (and stopped) again by a later command.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        health_port: int,
        log_path: Path,
        pid_file: Path | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**env, "JMO_HEALTH_PORT": str(health_port), "PYTHONUNBUFFERED": "1"}
        self.health_port = health_port
        self.log_path = Path(log_path)
        self.pid_file = pid_file
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None
        self._record: PidRecord | None = None

    def __repr__(self) -> str:
        return f"<ServiceProcess {self.name} pid={self.pid} {self.health_url}>"

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/health"

    def record(self) -> PidRecord | None:
        """The pid record of the running process, if it runs (from memory or the pid file)."""
        record = self._record or (PidRecord.read(self.pid_file) if self.pid_file else None)
        return record if record is not None and record.alive() else None

    @property
    def pid(self) -> int | None:
        record = self.record()
        return record.pid if record else None

    @property
    def running(self) -> bool:
        return self.record() is not None

    def healthy(self) -> bool:
        """True if the process runs and its /health answers 200."""
        return self.running and health_ok(self.health_url)

    def identity(self) -> list[str]:
        """What a pid file records to recognise this very configuration: argv and health port."""
        return [*self.argv, f"JMO_HEALTH_PORT={self.health_port}"]

    def start(self, *, wait_healthy: bool = True, timeout: float = 60.0) -> ServiceProcess:
        """Start the process (unless it already runs); optionally wait until /health answers 200.

        A process found through the pid file must have been started with the same command and port.
        """
        running = self.record()
        if running is not None and not running.runs(self.identity()):
            raise NotReady(f"{self.name} (pid {running.pid}) runs with other settings; stop it first")
        if running is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as log:
                log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {shlex.join(self.argv)}\n")
            self._popen = spawn(
                self.argv, log_path=self.log_path, env=self.env, cwd=self.cwd, die_with_parent=self.die_with_parent
            )
            self._record = PidRecord.of(self._popen.pid, self.identity())
            if self.pid_file:
                self._record.write(self.pid_file)
        if wait_healthy:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until /health answers 200; NotReady (with the log's tail) on timeout or exit."""
        try:
            wait_until(
                lambda: health_ok(self.health_url, timeout=1.0),
                timeout=timeout,
                what=f"service {self.name} ({self.health_url})",
                alive=lambda: self.running,
            )
        except NotReady as exc:
            raise NotReady(f"{exc}\n--- {self.log_path} ---\n{tail(self.log_path)}") from None

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. False if it was not running."""
        record = self._record or (PidRecord.read(self.pid_file) if self.pid_file else None)
        stopped = record is not None and terminate(record, timeout=timeout, popen=self._popen)
        self._forget()
        return stopped

    def kill(self) -> None:
        """SIGKILL the process (a crash, as far as the service can tell) and wait until it is gone."""
        record = self._record or (PidRecord.read(self.pid_file) if self.pid_file else None)
        if record is not None:
            kill(record, self._popen)
        self._forget()

    def restart(self, *, wait_healthy: bool = True, timeout: float = 60.0) -> ServiceProcess:
        """Stop (gracefully) and start again with the same command, environment and port."""
        self.stop()
        return self.start(wait_healthy=wait_healthy, timeout=timeout)

    def read_log(self) -> str:
        """Everything the process (and earlier runs of it) wrote to stdout and stderr."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mentions(self, value: str) -> bool:
        """Whether ``value`` stands in this process's log as a token of its own (see :func:`mentions`)."""
        return mentions(value, self.read_log())

    def _forget(self) -> None:
        self._popen = None
        self._record = None
        if self.pid_file:
            self.pid_file.unlink(missing_ok=True)


def service_env(
    kafka_bootstrap: str,
    mongodb_uri: str,
    topic_prefix: str,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a service runs with: ``base`` (default: ours) plus the connection settings.

    Kafka credentials in ``base`` are dropped (a shell that exported every principal's password must
    not hand them all to each service): a service gets its own identity separately (``extra``)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(("JMO_KAFKA_PASSWORD", "JMO_KAFKA_USERNAME"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        MONGODB_URI=mongodb_uri,
        JMO_TOPIC_PREFIX=topic_prefix,
    )
    env.update(extra or {})
    return env
