"""``jmo biometric compare`` / ``calibrate``: the service's decision on local files, as one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jmo_biometric.adapters.engine import FaceEngine, ImageLimits
from jmo_biometric.application.verification import DecisionPolicy
from jmo_biometric.domain.quality import QualityLimits
from jmo_biometric.settings import DEFAULT_THRESHOLD
from jmo_cli.calibration import decide_pairs, read_pairs, report

pytestmark = pytest.mark.integration
JMO = str(Path(sys.executable).with_name("jmo"))
DATA = Path(__file__).parents[2] / "services" / "biometric" / "tests" / "data"
FACES = DATA / "faces"


def jmo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([JMO, *args], capture_output=True, text=True, timeout=180, check=False)


def test_compare_prints_match_distance_threshold_reasons_and_timings() -> None:
    result = jmo("biometric", "compare", str(FACES / "obama2.jpg"), str(FACES / "obama.jpg"))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["match"] is True and out["reasons"] == [] and 0 < out["distance"] <= out["threshold"]
    assert out["timings"]["selfie_encode_ms"] > 0


def test_compare_gives_the_reason_of_a_refusal() -> None:
    out = json.loads(jmo("biometric", "compare", str(FACES / "two_people.jpg"), str(FACES / "obama.jpg")).stdout)
    assert (out["match"], out["reasons"], out["distance"]) == (False, ["MULTIPLE_FACES"], None)
    out = json.loads(jmo("biometric", "compare", str(FACES / "README.md"), str(FACES / "obama.jpg")).stdout)
    assert out["reasons"] == ["INVALID_IMAGE"]


def test_calibrate_reports_rates_at_the_threshold_and_the_best_threshold(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"file_a,file_b,same\n{FACES}/obama2.jpg,{FACES}/obama.jpg,Yes\n{FACES}/biden2.jpg,{FACES}/obama.jpg,No\n{FACES}/kit_harington2.jpeg,{FACES}/kit_harington1.jpeg,yes\n")
    result = jmo("biometric", "calibrate", str(pairs), "--threshold", "0.6")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["pairs"], out["accuracy"], out["tar"], out["far"], out["threshold"]) == (3, 1.0, 1.0, 0.0, 0.6)
    assert out["distance_same"]["max"] < out["best_threshold"] < out["distance_different"]["min"]


def test_every_labelled_pair_is_decided_right_at_the_configured_threshold() -> None:
    engine, policy = FaceEngine(), DecisionPolicy(DEFAULT_THRESHOLD, ImageLimits(), QualityLimits())
    pairs = read_pairs(DATA / "pairs.csv")
    assert len(pairs) == 78 and sum(p.same for p in pairs) == 10
    outcomes = decide_pairs(pairs, lambda d: engine.analyse_selfie(d, ImageLimits(), QualityLimits()), lambda d: engine.analyse_reference(d, ImageLimits()), policy)
    assert [(o.pair.a.name, o.pair.b.name) for o in outcomes if o.verdict.match != o.pair.same] == []
    figures = report(outcomes, DEFAULT_THRESHOLD)
    assert (figures["accuracy"], figures["tar"], figures["far"]) == (1.0, 1.0, 0.0)
