"""FerretDB (MongoDB wire protocol over SQLite) running from .local/bin/ferretdb."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .net import LOOPBACK, port_open, wait_until
from .paths import StackPaths
from .server import ManagedServer


def ping(uri: str, timeout_ms: int = 2000) -> bool:
    """True if the MongoDB-protocol server at ``uri`` answers ``ping``."""
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        return client.admin.command("ping").get("ok") == 1
    except PyMongoError:
        return False
    finally:
        client.close()


#: SQLite's ``synchronous`` for the embedded store's WAL: NORMAL syncs at checkpoints, not at every
#: commit. A killed FerretDB (or any process of ours) loses nothing, the files never corrupt; a power
#: cut or kernel crash of the host may lose the last commits before it — as MongoDB's own default
#: (w:1, journal committed every 100 ms) may. FULL (``JMO_FERRETDB_SYNCHRONOUS=FULL``) fsyncs every
#: write command: measured, that was 16 % of the server's CPU and a disk flush in every round trip.
SYNCHRONOUS = "NORMAL"


class FerretDBServer(ManagedServer):
    """One FerretDB server on 127.0.0.1:``port`` keeping its SQLite files in ``workdir``/data/.

    Its log is ``workdir``/ferretdb.log; ``start()`` adopts a server already running from the
    same pid file. ``synchronous`` is SQLite's sync mode (see :data:`SYNCHRONOUS`). With
    ``cpu_profile`` the server writes a Go CPU profile of its whole run to that file, closed when
    it stops (``go tool pprof .local/bin/ferretdb <file>``).
    """

    label = "FerretDB"

    def __init__(
        self,
        workdir: Path,
        port: int = 27017,
        *,
        paths: StackPaths | None = None,
        pid_file: Path | None = None,
        log_level: str = "warn",
        die_with_parent: bool = False,
        synchronous: str | None = None,
        cpu_profile: Path | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port
        self.paths = paths or StackPaths.discover()
        self.pid_file = pid_file or self.workdir / "ferretdb.pid"
        self.log_level = log_level
        self.die_with_parent = die_with_parent
        self.synchronous = (synchronous or os.environ.get("JMO_FERRETDB_SYNCHRONOUS") or SYNCHRONOUS).upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"SQLite synchronous must be OFF, NORMAL, FULL or EXTRA, not {self.synchronous!r}")
        self.cpu_profile = cpu_profile
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The connection string clients use."""
        return f"mongodb://{LOOPBACK}:{self.port}/"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "ferretdb.log"

    def command(self) -> list[str]:
        return [
            str(self.paths.ferretdb_bin),
            "-listen-addr", f"{LOOPBACK}:{self.port}",
            "-sqlite-url", f"file:{self.data_dir}/?_pragma=synchronous({self.synchronous})",
            "-log-level", self.log_level,
            *(["-cpu-profile", str(self.cpu_profile)] if self.cpu_profile is not None else []),
        ]

    def start(self, timeout: float = 30.0) -> bool:
        """Start the server and wait until it answers ``ping``. False if it already ran."""
        if not self.paths.ferretdb_bin.exists():
            raise FileNotFoundError(f"no {self.paths.ferretdb_bin}; run `make install`")
        cmd = self.command()
        return self._launch(cmd, identity=cmd, ports=[self.port], output=self.log_path, timeout=timeout, prepare=lambda: self.data_dir.mkdir(parents=True, exist_ok=True))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server answers ``ping``."""
        wait_until(
            lambda: port_open(LOOPBACK, self.port) and ping(self.uri),
            timeout=timeout,
            what=f"FerretDB on {self.uri}",
            alive=lambda: self.running,
        )
