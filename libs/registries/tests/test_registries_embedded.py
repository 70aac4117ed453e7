"""NIK helpers, the embedded registries and identities()."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from jmo_registries import (
    EmbeddedEmployerRegistry,
    EmbeddedPopulationRegistry,
    EmployerRegistry,
    Membership,
    NikCheck,
    PopulationRegistry,
    default_dataset,
    identities,
    mask_nik,
    normalise_name,
    parse_nik,
)

pytestmark = pytest.mark.unit


def first(pred):  # noqa: ANN001, ANN201
    return next(r for r in default_dataset() if pred(r))


def test_parse_nik_reads_region_birth_date_and_gender() -> None:
    man = parse_nik("3201011205900001", century_pivot=25)
    woman = parse_nik("3201015205050001", century_pivot=25)
    assert man and man.province == "32" and man.region == "320101"
    assert man.birth_date == date(1990, 5, 12) and man.gender == "M"
    assert woman and woman.birth_date == date(2005, 5, 12) and woman.gender == "F"


@pytest.mark.parametrize("nik", [
    "320101120590000",     # 15 digits
    "32010112059000a1",    # not digits
    "1001011205900001",    # province 10 does not exist
    "9901011205900001",    # province 99 neither
    "3200011205900001",    # regency 00
    "3201001205900001",    # district 00
    "3201013202900001",    # 32nd day
    "3201013102900000",    # serial 0000
    "3201012902910001",    # 29 February 1991
    "3201017205900001",    # DD 72
])
def test_parse_nik_refuses_malformed(nik: str) -> None:
    assert parse_nik(nik) is None


def test_normalise_and_mask() -> None:
    assert normalise_name("  siti \t nur'aini  ") == "SITI NUR'AINI"
    assert mask_nik("3201011205900001") == "3201********0001"
    assert mask_nik("123") == "***"


async def test_embedded_classes_satisfy_the_ports() -> None:
    assert isinstance(EmbeddedPopulationRegistry(), PopulationRegistry)
    assert isinstance(EmbeddedEmployerRegistry(), EmployerRegistry)


async def test_verify_matches_normalised_name_and_birth_date() -> None:
    r = first(lambda r: True)
    registry = EmbeddedPopulationRegistry()
    born = date.fromisoformat(r["birth_date"])
    messy = "  " + "   ".join(r["full_name"].lower().split()) + " "
    assert await registry.verify(r["nik"], messy, born) is NikCheck.SESUAI
    assert await registry.verify(r["nik"], r["full_name"]) is NikCheck.SESUAI
    assert await registry.verify(r["nik"], r["full_name"] + " X", born) is NikCheck.TIDAK_SESUAI
    assert await registry.verify(r["nik"], r["full_name"], born + timedelta(days=1)) is NikCheck.TIDAK_SESUAI
    assert await registry.verify("3201011205900001", r["full_name"]) is NikCheck.NOT_FOUND
    assert await registry.verify("not a nik", r["full_name"]) is NikCheck.NOT_FOUND


async def test_ktp_photo_only_for_citizens_with_one() -> None:
    registry = EmbeddedPopulationRegistry()
    with_photo = first(lambda r: r.get("photo"))
    without = first(lambda r: not r.get("photo"))
    photo = await registry.ktp_photo(with_photo["nik"])
    assert photo == (default_dataset().photo_dir / with_photo["photo"]).read_bytes()
    assert await registry.ktp_photo(without["nik"]) is None
    assert await registry.ktp_photo("3201011205900001") is None


async def test_membership_active_inactive_and_absent() -> None:
    registry = EmbeddedEmployerRegistry()
    active = first(lambda r: (r.get("employer") or {}).get("status") == "ACTIVE")
    inactive = first(lambda r: (r.get("employer") or {}).get("status") == "INACTIVE")
    none = first(lambda r: "employer" not in r)
    m = await registry.membership(active["nik"])
    assert isinstance(m, Membership) and m.active
    assert m.kpj_number == active["employer"]["kpj_number"]
    assert m.member_since == date.fromisoformat(active["employer"]["member_since"])
    assert m.programs == ("JKK", "JKM", "JHT", "JP")
    assert (await registry.membership(inactive["nik"])).active is False  # type: ignore[union-attr]
    assert await registry.membership(none["nik"]) is None


def test_identities_for_pu_are_active_members_with_photos_first() -> None:
    ids = identities("PU", 50)
    assert len(ids) == 50
    ds = default_dataset()
    for i in ids:
        assert i["employer_registered"] is True and len(i["kpj_number"]) == 11
        assert ds.get(i["nik"])["employer"]["status"] == "ACTIVE"  # type: ignore[index]
    photos = [i["photo"] for i in ids if i["photo"]]
    assert photos and all(Path(p).is_file() for p in photos)
    assert all(i["photo"] for i in ids[: len(photos)])  # photos first


@pytest.mark.parametrize("category", ["BPU", "PMI", None])
def test_identities_for_other_categories_include_anyone(category: str | None) -> None:
    ids = identities(category, 300)
    assert len(ids) == 300
    assert {i["employer_registered"] for i in ids} == {True, False}
    assert sum(1 for i in ids if i["photo"]) == 6
    for i in ids:
        assert set(i) >= {"nik", "full_name", "birth_date", "employer_registered", "photo"}
        assert ("kpj_number" in i) == ("employer" in default_dataset().get(i["nik"]))  # type: ignore[operator]


def test_identities_are_deterministic_and_bounded() -> None:
    assert identities("PU", 20) == identities("PU", 20)
    assert identities("BPU", 5) == identities("BPU", 10)[:5]
    assert identities(None, 0) == []
    with pytest.raises(ValueError):
        identities("XYZ", 1)
    with pytest.raises(ValueError):
        identities("PU", -1)


def test_a_nik_in_non_ascii_digits_is_not_a_nik() -> None:
    from jmo_registries.nik import parse_nik

    assert parse_nik("3201014508900001") is not None
    assert parse_nik("3201014508900001".translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))) is None
