"""Where the embedded stack keeps its tools, state, logs and pid files.

Everything lives under the repository's git-ignored ``.local/`` directory:

- ``.local/kafka/libs``  Kafka jars resolved from Maven Central (``deploy/kafka/pom.xml``)
- ``.local/bin/ferretdb`` the FerretDB binary built from ``deploy/ferretdb``
- ``.local/state/``       Kafka and FerretDB data of ``make up`` (removed by ``make reset``)
- ``.local/logs/``        logs of the processes ``make up`` starts
- ``.local/run/``         their pid files

``JMO_DEVSTACK_HOME`` moves state, logs and pid files elsewhere (tools stay in ``.local/``), so
that two stacks can run side by side from one checkout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_MARKER = Path("deploy") / "kafka" / "pom.xml"


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest ancestor of ``start`` (or the cwd) holding deploy/kafka/pom.xml.

    Falls back to the checkout this package is installed from (it is an editable workspace member).
    """
    candidates = [(start or Path.cwd()).resolve()]
    candidates.append(Path(__file__).resolve())
    for origin in candidates:
        for directory in (origin, *origin.parents):
            if (directory / _MARKER).is_file():
                return directory
    raise FileNotFoundError(f"no {_MARKER} above {candidates[0]}; run from the JMO repository")


@dataclass(frozen=True)
class StackPaths:
    """The file layout of the embedded stack for one repository checkout."""

    root: Path
    home: Path

    @classmethod
    def discover(cls, start: Path | None = None, environ: Mapping[str, str] = os.environ) -> StackPaths:
        """Paths for the repository containing ``start`` (default: the cwd); JMO_DEVSTACK_HOME from ``environ``."""
        root = find_root(start)
        home = environ.get("JMO_DEVSTACK_HOME")
        return cls(root=root, home=Path(home).resolve() if home else root / ".local")

    @property
    def local(self) -> Path:
        return self.root / ".local"

    @property
    def kafka_pom(self) -> Path:
        return self.root / "deploy" / "kafka" / "pom.xml"

    @property
    def kafka_log4j(self) -> Path:
        return self.root / "deploy" / "kafka" / "log4j2.xml"

    @property
    def kafka_libs(self) -> Path:
        return self.local / "kafka" / "libs"

    @property
    def ferretdb_src(self) -> Path:
        return self.root / "deploy" / "ferretdb"

    @property
    def ferretdb_bin(self) -> Path:
        return self.local / "bin" / "ferretdb"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def python(self) -> str:
        """The interpreter of the project's virtual environment (the current one if there is none)."""
        venv = self.root / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable
