"""Every service has the same shape (ARCHITECTURE "The shape", issue 13): ``domain/`` (pure
deciders), ``application/`` (use cases), ``adapters/`` and ``entrypoint/`` (the process: wiring and
subscribers), and nothing else beside them but its settings, its ``__main__`` and data files. A
reader who knows one service knows where to look in the others."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in ROOT.glob("services/*/src/jmo_*") if p.is_dir())
LAYERS = {"domain", "application", "adapters", "entrypoint"}
BESIDE_THE_LAYERS = {"__init__.py", "__main__.py", "settings.py", "data", "templates", "__pycache__"}


def test_there_are_five_services_to_check() -> None:
    assert len(PACKAGES) == 5


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_service_has_the_four_layers_and_nothing_loose_beside_them(package: Path) -> None:
    present = {p.name for p in package.iterdir()}
    assert LAYERS <= present, f"{package.name} lacks {sorted(LAYERS - present)}"
    for layer in LAYERS:
        assert any(m.name != "__init__.py" for m in (package / layer).glob("*.py")), f"{package.name}/{layer} is empty"
    assert present - LAYERS - BESIDE_THE_LAYERS == set(), f"{package.name} has modules outside its layers"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_service_s_entrypoint_is_one_module_of_wiring(package: Path) -> None:
    assert sorted(m.name for m in (package / "entrypoint").glob("*.py") if m.name != "__init__.py") == ["app.py"]
