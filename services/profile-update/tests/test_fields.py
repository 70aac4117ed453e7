"""Numeric fields a participant types take ASCII digits only; names compare in NFKC (issue 12 §7)."""

from __future__ import annotations

import pytest

from jmo_profile_update.domain.fields import check_bank_account, check_npwp, known_bank
from jmo_runtime import Rejection
from jmo_runtime.rules import normalise_name

pytestmark = pytest.mark.unit

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize("table", [ARABIC_INDIC, FULLWIDTH])
def test_an_npwp_in_other_scripts_digits_is_refused(table: dict[int, str]) -> None:
    assert check_npwp("012345678901234") == "012345678901234"
    with pytest.raises(Rejection) as refused:
        check_npwp("012345678901234".translate(table))
    assert refused.value.reason_code == "INVALID_NPWP"


@pytest.mark.parametrize("table", [ARABIC_INDIC, FULLWIDTH])
def test_a_bank_account_in_other_scripts_digits_is_refused(table: dict[int, str]) -> None:
    bank = known_bank("BCA")
    number = "1" * bank.account_lengths[0]
    assert check_bank_account(bank, number) == number
    with pytest.raises(Rejection) as refused:
        check_bank_account(bank, number.translate(table))
    assert refused.value.reason_code == "INVALID_BANK_ACCOUNT"


def test_a_name_in_fullwidth_letters_compares_as_the_plain_name() -> None:
    assert normalise_name("ｓｉｔｉ　ａｍｉｎａｈ") == "SITI AMINAH"
