"""KPJ numbers for new BPU / PMI participants: 11 digits, Luhn check digit, deterministic candidates."""

from __future__ import annotations

from itertools import islice

import pytest

from jmo_registration.domain.kpj import is_valid_kpj, kpj_candidates, luhn_check_digit

pytestmark = pytest.mark.unit

PARTICIPANT = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
OTHER = "0123456789abcdef0123456789abcdef"


def test_candidates_are_eleven_digit_numbers_without_a_leading_zero_and_with_a_valid_check_digit() -> None:
    for number in islice(kpj_candidates(PARTICIPANT), 500):
        assert len(number) == 11 and number.isdigit() and number[0] != "0"
        assert is_valid_kpj(number)


def test_the_same_participant_always_gets_the_same_candidates_so_a_retry_proposes_the_same_number() -> None:
    assert list(islice(kpj_candidates(PARTICIPANT), 5)) == list(islice(kpj_candidates(PARTICIPANT), 5))


def test_after_a_collision_the_next_candidate_is_a_different_number() -> None:
    candidates = list(islice(kpj_candidates(PARTICIPANT), 1000))
    assert len(set(candidates)) == 1000


def test_different_participants_get_different_candidates() -> None:
    firsts = {next(kpj_candidates(f"{n:032x}")) for n in range(2000)}
    assert len(firsts) == 2000
    assert next(kpj_candidates(PARTICIPANT)) != next(kpj_candidates(OTHER))


def test_first_digits_spread_over_one_to_nine() -> None:
    assert {next(kpj_candidates(f"{n:032x}"))[0] for n in range(500)} == set("123456789")


def test_a_seed_is_required() -> None:
    with pytest.raises(ValueError):
        next(kpj_candidates(""))


def test_the_check_digit_is_luhn() -> None:
    # The classic Luhn example 7992739871 → 3, and a card-style number.
    assert luhn_check_digit("7992739871") == "3"
    assert is_valid_kpj("79927398713")
    assert luhn_check_digit("4539148803436467"[:-1]) == "7"


def test_every_single_digit_typo_is_detected() -> None:
    number = next(kpj_candidates(PARTICIPANT))
    for position in range(11):
        for digit in "0123456789":
            typo = number[:position] + digit + number[position + 1 :]
            if typo != number:
                assert not is_valid_kpj(typo), typo


def test_swapping_neighbouring_digits_is_detected_unless_they_are_09_or_90() -> None:
    for number in islice(kpj_candidates(PARTICIPANT), 50):
        for i in range(10):
            a, b = number[i], number[i + 1]
            swapped = number[:i] + b + a + number[i + 2 :]
            if a != b and {a, b} != {"0", "9"} and swapped[0] != "0":
                assert not is_valid_kpj(swapped), (number, swapped)


@pytest.mark.parametrize(
    "number",
    ["", "7992739871", "799273987130", "7992739871X", "79927398714", "09927398713", "７９９２７３９８７１３", 79927398713],
)
def test_malformed_numbers_are_not_valid(number: object) -> None:
    assert not is_valid_kpj(number)  # type: ignore[arg-type]
