"""``jmo dev identities``: synthetic citizens a person can register with."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jmo_registration.domain.identity_rules import parse_nik

pytestmark = pytest.mark.unit
JMO = str(Path(sys.executable).with_name("jmo"))


def test_dev_identities_gives_employer_enrolled_citizens_whose_nik_passes_registration() -> None:
    result = subprocess.run([JMO, "dev", "identities", "--category", "PU", "--count", "3"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    people = json.loads(result.stdout)
    assert len(people) == 3 and all(p["employer_registered"] and len(p["kpj_number"]) == 11 for p in people)
    for person in people:
        assert str(parse_nik(person["nik"], datetime.now(UTC).date()).birth_date) == person["birth_date"]


def test_an_unknown_category_is_refused() -> None:
    result = subprocess.run([JMO, "dev", "identities", "--category", "XYZ"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2


def test_dev_identities_shows_which_citizens_have_a_ktp_photo_and_where_it_is() -> None:
    result = subprocess.run([JMO, "dev", "identities", "--count", "8"], capture_output=True, text=True, timeout=60, check=False)
    people = json.loads(result.stdout)
    with_photo = [p for p in people if p["has_ktp_photo"]]
    assert len(with_photo) == 6 and all(Path(p["photo"]).is_file() for p in with_photo)
    assert all(p["photo"] is None for p in people if not p["has_ktp_photo"])
