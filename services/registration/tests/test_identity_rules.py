"""Input rules of registration (SPEC §3.2), as sentences."""

from __future__ import annotations

from datetime import date

import pytest

from jmo_registration.domain.identity_rules import check_email, normalise_name, parse_nik, to_e164
from jmo_runtime import Rejection

pytestmark = pytest.mark.unit
TODAY = date(2026, 11, 21)


def reason(fn, *args) -> str:  # noqa: ANN001
    with pytest.raises(Rejection) as info:
        fn(*args)
    return info.value.reason_code


def test_a_mans_nik_gives_his_birth_date_and_gender() -> None:
    facts = parse_nik("3201010508900001", TODAY)
    assert (facts.province, facts.birth_date, facts.gender) == (32, date(1990, 8, 5), "M")


def test_a_womans_nik_has_forty_added_to_the_day() -> None:
    facts = parse_nik("3201014508900001", TODAY)
    assert (facts.birth_date, facts.gender) == (date(1990, 8, 5), "F")


def test_a_two_digit_year_not_after_today_is_in_this_century() -> None:
    assert parse_nik("3201010101100001", TODAY).birth_date == date(2010, 1, 1)
    assert parse_nik("3201010101300001", TODAY).birth_date == date(1930, 1, 1)


@pytest.mark.parametrize(
    ("nik", "why"),
    [
        ("320101450890000", "15 digits"),
        ("32010145089000012", "17 digits"),
        ("32010145089O0001", "a letter O"),
        ("1001014508900001", "province 10 does not exist"),
        ("9501014508900001", "province 95 does not exist"),
        ("3200004508900001", "no regency"),
        ("3201013202900001", "February 32nd"),
        ("3201017202900001", "a woman's February 32nd"),
        ("3201013502900001", "day 35 is neither a man's nor a woman's"),
        ("3201012902010001", "29 February 2001 did not exist"),
        ("3201010513900001", "month 13"),
        ("3201014508900000", "serial 0000"),
        ("３２０１０１４５０８９００００１", "full-width digits"),
    ],
)
def test_a_malformed_nik_is_rejected_as_invalid(nik: str, why: str) -> None:
    assert reason(parse_nik, nik, TODAY) == "INVALID_NIK", why


def test_names_are_trimmed_single_spaced_and_upper_case() -> None:
    assert normalise_name("  siti   aminah-putri  ") == "SITI AMINAH-PUTRI"
    assert normalise_name("Ni Luh O'Neil, S.Kom.") == "NI LUH O'NEIL, S.KOM."


@pytest.mark.parametrize("name", ["", "   ", "Siti2", "Budi_Santoso", "<script>"])
def test_names_with_other_characters_are_rejected(name: str) -> None:
    assert reason(normalise_name, name) == "INVALID_NAME"


@pytest.mark.parametrize(("given", "e164"), [("081234567890", "+6281234567890"), ("+62 812-3456-7890", "+6281234567890"), ("6285712345678", "+6285712345678")])
def test_indonesian_mobile_numbers_are_stored_in_e164(given: str, e164: str) -> None:
    assert to_e164(given) == e164


@pytest.mark.parametrize("phone", ["0212345678", "+6512345678", "0812", "08123456789012345", "0800000000"])
def test_numbers_that_are_not_indonesian_mobiles_are_rejected(phone: str) -> None:
    assert reason(to_e164, phone) == "INVALID_PHONE"


def test_emails_must_be_syntactically_valid() -> None:
    assert check_email(" Siti.Aminah@Example.co.id ") == "siti.aminah@example.co.id"
    for bad in ("siti", "siti@", "@example.com", "siti@example", "si ti@example.com"):
        assert reason(check_email, bad) == "INVALID_EMAIL", bad
