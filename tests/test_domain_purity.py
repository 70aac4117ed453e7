"""The domain is pure, by contract and not by discipline (ARCHITECTURE habit 14, issue 13): no
module under ``services/*/src/*/domain/`` — nor the decider core it builds on — imports a driver, a
broker client, a logger or a web server (also not through a package ``__init__``), reads the clock,
or guards a branch with ``assert`` (which ``python -O`` removes)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DOMAIN_FILES = sorted(ROOT.glob("services/*/src/*/domain/*.py"))
CORE = ["jmo_runtime.decider", "jmo_runtime.rules", "jmo_runtime.privacy"]
FORBIDDEN = ("pymongo", "motor", "aiokafka", "kafka", "faststream", "structlog", "logging", "uvicorn", "httpx", "aiohttp", "tenacity")
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _module(path: Path) -> str:
    parts = path.relative_to(path.parents[2]).with_suffix("").parts  # <package>/domain/<module>
    return ".".join(p for p in parts if p != "__init__")


def test_every_service_has_a_domain_to_check() -> None:
    assert {p.parts[-5] for p in DOMAIN_FILES} >= {"registration", "identity", "biometric", "profile-update", "notification"}


@pytest.mark.parametrize("module", [_module(p) for p in DOMAIN_FILES] + CORE)
def test_importing_a_domain_module_loads_no_infrastructure(module: str) -> None:
    probe = f"import sys, {module}; print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert loaded == "", f"{module} loads {loaded}"


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_domain_module_neither_reads_the_clock_nor_asserts(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    clock = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in CLOCK_CALLS]
    assert (asserts, clock) == ([], []), f"assert at lines {asserts}, clock read at lines {clock}"
