"""The shipped synthetic data set: reproducible, structurally valid, no real people."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from jmo_registries import generate
from jmo_registries.dataset import CITIZENS_FILE, PHOTO_DIR, CitizenDataset, default_dataset

pytestmark = pytest.mark.unit

# Written out here on purpose, not imported: the test checks the generator against an independent
# reading of the NIK rules (SPEC §3.2) and the Kemendagri province list.
KEMENDAGRI_PROVINCES = {
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
}
NAME = re.compile(r"^[A-Za-z][A-Za-z '.,-]*$")
FACES = {"obama.jpg", "biden.jpg", "alex-lacamoire.png", "kit_harington1.jpeg", "rose_leslie1.jpg",
         "lin-manuel-miranda.png"}
REAL_NAMES = {"BARACK", "OBAMA", "BIDEN", "JOE", "ALEX", "LACAMOIRE", "KIT", "HARINGTON", "ROSE",
              "LESLIE", "LIN", "MANUEL", "MIRANDA"}


def independent_nik_check(nik: str, birth_date: date, gender: str) -> list[str]:
    """Every way ``nik`` breaks the rules or disagrees with the record (empty when valid)."""
    problems = []
    if len(nik) != 16 or not nik.isdigit():
        return ["not 16 digits"]
    if not 11 <= int(nik[:2]) <= 94 or int(nik[:2]) not in KEMENDAGRI_PROVINCES:
        problems.append("province")
    if nik[2:4] == "00":
        problems.append("regency")
    if nik[4:6] == "00":
        problems.append("district")
    dd, mm, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    female = dd > 40
    day = dd - 40 if female else dd
    if not (1 <= dd <= 31 or 41 <= dd <= 71):
        problems.append("day")
    year = (1900 if yy >= 50 else 2000) + yy  # the data set's births are 1950–2007
    try:
        encoded = date(year, mm, day)
    except ValueError:
        problems.append("date does not exist")
    else:
        if encoded != birth_date:
            problems.append("birth date differs from the record")
    if ("F" if female else "M") != gender:
        problems.append("gender differs from the record")
    if nik[12:] == "0000":
        problems.append("serial")
    return problems


@pytest.fixture(scope="module")
def committed() -> bytes:
    return CITIZENS_FILE.read_bytes()


@pytest.fixture(scope="module")
def records(committed: bytes) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(committed).splitlines()]


def test_regenerating_gives_the_committed_records_byte_for_byte(committed: bytes) -> None:
    regenerated = generate.render_jsonl(generate.generate_records())
    assert regenerated == gzip.decompress(committed), "data set drifted: run python -m jmo_registries.generate"


def test_regenerating_gives_the_committed_gzip_byte_for_byte(committed: bytes) -> None:
    manifest = json.loads(generate.MANIFEST.read_text())
    if manifest["zlib_version"] != zlib.ZLIB_RUNTIME_VERSION:
        pytest.skip(f"compressed with zlib {manifest['zlib_version']}, here {zlib.ZLIB_RUNTIME_VERSION}")
    assert generate.compress(generate.render_jsonl(generate.generate_records())) == committed


def test_manifest_describes_the_committed_file(committed: bytes, records: list[dict]) -> None:
    manifest = json.loads(generate.MANIFEST.read_text())
    assert manifest["count"] == len(records)
    assert manifest["gzip_bytes"] == len(committed)


def test_size_and_count(committed: bytes, records: list[dict]) -> None:
    assert len(records) >= 10_000
    assert len(committed) <= 1_000_000


def test_every_nik_is_valid_unique_and_matches_its_record(records: list[dict]) -> None:
    bad = {}
    for r in records:
        problems = independent_nik_check(r["nik"], date.fromisoformat(r["birth_date"]), r["gender"])
        if problems:
            bad[r["nik"][:6]] = problems
    assert not bad
    assert len({r["nik"] for r in records}) == len(records)


def test_fields_are_well_formed(records: list[dict]) -> None:
    for r in records:
        assert NAME.match(r["full_name"]) and NAME.match(r["mother_maiden_name"])
        assert r["full_name"] == " ".join(r["full_name"].split()) == r["full_name"].upper()
        assert date(1950, 1, 1) <= date.fromisoformat(r["birth_date"]) <= date(2007, 12, 31)
        assert r["gender"] in ("M", "F")
        assert r["birth_place"] and r["address"] and r["religion"] and r["marital_status"]


def test_spread_of_genders_provinces_and_employers(records: list[dict]) -> None:
    genders = Counter(r["gender"] for r in records)
    assert 0.45 < genders["F"] / len(records) < 0.55
    assert len({r["nik"][:2] for r in records}) >= 30
    employed = [r["employer"] for r in records if "employer" in r]
    assert 0.25 < len(employed) / len(records) < 0.35
    statuses = Counter(e["status"] for e in employed)
    assert statuses["INACTIVE"] > 0 and statuses["ACTIVE"] > 10 * statuses["INACTIVE"]


def test_memberships_are_well_formed(records: list[dict]) -> None:
    employed = [r for r in records if "employer" in r]
    kpjs = [r["employer"]["kpj_number"] for r in employed]
    assert len(set(kpjs)) == len(kpjs)
    for r in employed:
        e = r["employer"]
        assert re.fullmatch(r"\d{11}", e["kpj_number"]) and re.fullmatch(r"\d{8}", e["employer_npp"])
        assert e["employer_name"].startswith("PT ")
        assert e["programs"] == ["JKK", "JKM", "JHT", "JP"]
        assert date.fromisoformat(r["birth_date"]) < date.fromisoformat(e["member_since"]) <= generate.AS_OF


def test_exactly_the_six_faces_each_on_a_synthetic_name(records: list[dict]) -> None:
    with_photo = [r for r in records if r.get("photo")]
    assert {r["photo"] for r in with_photo} == FACES and len(with_photo) == 6
    for r in with_photo:
        assert not REAL_NAMES & set(r["full_name"].split())
        assert (PHOTO_DIR / r["photo"]).is_file()
    assert (PHOTO_DIR / "LICENSE.face_recognition").is_file()
    assert {p.name for p in PHOTO_DIR.iterdir()} == FACES | {"LICENSE.face_recognition"}
    # faces for both journeys: some can activate as PU, some only register as BPU / PMI
    active = [r for r in with_photo if (r.get("employer") or {}).get("status") == "ACTIVE"]
    assert 0 < len(active) < 6


def test_default_dataset_is_loaded_once_and_indexed(records: list[dict]) -> None:
    ds = default_dataset()
    assert ds is default_dataset()
    assert len(ds) == len(records)
    assert ds.get(records[-1]["nik"]) == records[-1]
    assert ds.get("0000000000000000") is None


def test_duplicate_niks_are_refused(records: list[dict]) -> None:
    with pytest.raises(ValueError):
        CitizenDataset([records[0], records[0]])


def test_generate_check_reports_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_photo_paths_stay_inside_the_package() -> None:
    assert Path(PHOTO_DIR).resolve().is_relative_to(Path(generate.__file__).parent.resolve())
