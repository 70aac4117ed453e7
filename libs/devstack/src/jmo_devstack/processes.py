"""Background processes that outlive the command that started them, tracked by pid files.

A pid file holds the pid and the process's start time (from /proc), so a recycled pid is never
mistaken for our process. Every process gets its own session (process group), so stopping it also
stops whatever it forked.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it does not exist or is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _kill0(pid)
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _kill0(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


def _ticks(pid: int) -> int | None:
    return start_ticks(pid) if Path("/proc").is_dir() else _kill0(pid)


@dataclass(frozen=True)
class PidRecord:
    """A process we started: its pid, its start time and the command it runs."""

    pid: int
    started: int | None
    argv: tuple[str, ...] = ()

    @classmethod
    def of(cls, pid: int, argv: Sequence[str] = ()) -> PidRecord:
        return cls(pid, _ticks(pid), tuple(argv))

    def runs(self, argv: Sequence[str]) -> bool:
        """True if this record was written for exactly ``argv`` (the same program and settings)."""
        return self.argv == tuple(argv)

    def alive(self) -> bool:
        """True while this very process (not a later one reusing its pid) runs and is not a zombie."""
        now = _ticks(self.pid)
        return now is not None and (self.started is None or now == self.started or now == 0)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": self.pid, "started": self.started, "argv": list(self.argv)}))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        """The record in ``path``, or None if there is none (or it is unreadable)."""
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), data.get("started"), tuple(data.get("argv", ())))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with stdout and stderr appended to ``log_path``.

    ``die_with_parent`` (Linux) kills the process if the starting thread dies, so a crashed test
    session leaves no broker behind; only use it from a thread that lives as long as the process.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
        )


def terminate(
    record: PidRecord,
    *,
    timeout: float = 15.0,
    popen: subprocess.Popen[bytes] | None = None,
) -> bool:
    """SIGTERM the process group of ``record``, SIGKILL it after ``timeout`` s. False if it had already gone."""
    if not record.alive():
        if popen is not None:
            popen.poll()
        return False
    _signal_group(record.pid, signal.SIGTERM)
    if not _wait_gone(record, timeout, popen):
        _signal_group(record.pid, signal.SIGKILL)
        _wait_gone(record, 10.0, popen)
    return True


def kill(record: PidRecord, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGKILL the process group of ``record`` at once and wait until it is gone."""
    if record.alive():
        _signal_group(record.pid, signal.SIGKILL)
        _wait_gone(record, 10.0, popen)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _wait_gone(record: PidRecord, timeout: float, popen: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            try:
                popen.wait(timeout=0.1)
                return True
            except subprocess.TimeoutExpired:
                continue
        if not record.alive():
            return True
        time.sleep(0.1)
    return not record.alive()


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
