"""What Kafka and FerretDB have in common here: a process started once, found again by its pid
file, waited for until it answers, and stopped by pid."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

from .net import LOOPBACK, NotReady, port_open
from .processes import PidRecord, kill, spawn, tail, terminate


class ManagedServer(ABC):
    """A local server process owned by the stack. Subclasses say how to run it and when it is ready."""

    #: Shown in messages ("a Kafka from … runs with other settings").
    label: str = "server"
    #: Seconds between SIGTERM and SIGKILL.
    stop_timeout: float = 15.0

    workdir: Path
    pid_file: Path
    die_with_parent: bool
    _popen: subprocess.Popen[bytes] | None

    @abstractmethod
    def wait_ready(self, timeout: float) -> None:
        """Block until the server answers; raise :class:`NotReady` on timeout or death."""

    @property
    @abstractmethod
    def log_path(self) -> Path:
        """The server's own log."""

    def record(self) -> PidRecord | None:
        """The pid record of the running server, if it runs."""
        record = PidRecord.read(self.pid_file)
        return record if record is not None and record.alive() else None

    @property
    def running(self) -> bool:
        return self.record() is not None

    def _launch(
        self,
        cmd: Sequence[str],
        *,
        identity: Sequence[str],
        ports: Sequence[int],
        output: Path,
        timeout: float,
        prepare: Callable[[], None],
    ) -> bool:
        """Start ``cmd`` unless a server with the same ``identity`` already runs (then adopt it).

        Returns False when it was already running. On a failed start the server is stopped and
        the end of its log is part of the error.
        """
        running = self.record()
        if running is not None:
            if not running.runs(list(identity)):
                raise NotReady(f"a {self.label} from {self.pid_file} (pid {running.pid}) runs with other settings; stop it first")
            self.wait_ready(timeout)
            return False
        for port in ports:
            if port_open(LOOPBACK, port):
                raise NotReady(f"port {LOOPBACK}:{port} is already in use by another process")
        prepare()
        self._popen = spawn(list(cmd), log_path=output, cwd=self.workdir, die_with_parent=self.die_with_parent)
        PidRecord.of(self._popen.pid, list(identity)).write(self.pid_file)
        try:
            self.wait_ready(timeout)
        except NotReady as exc:
            detail = tail(self.log_path) or tail(output)
            self.stop()
            raise NotReady(f"{exc}\n--- {self.log_path} ---\n{detail}") from None
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """SIGTERM the server, SIGKILL after ``timeout`` s. False if it was not running."""
        record = PidRecord.read(self.pid_file)
        stopped = record is not None and terminate(record, timeout=timeout or self.stop_timeout, popen=self._popen)
        self.pid_file.unlink(missing_ok=True)
        self._popen = None
        return stopped

    def kill(self) -> None:
        """SIGKILL the server."""
        record = PidRecord.read(self.pid_file)
        if record is not None:
            kill(record, self._popen)
        self.pid_file.unlink(missing_ok=True)
