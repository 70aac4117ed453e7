"""Personal data is masked before anything is logged."""

from __future__ import annotations

import pytest

from jmo_runtime.privacy import mask, mask_personal

pytestmark = pytest.mark.unit


def test_a_nik_keeps_its_first_and_last_four_digits() -> None:
    assert mask("3201014508900001") == "3201********0001"


def test_a_phone_keeps_its_prefix_and_last_four_digits() -> None:
    assert mask("+6281234567890") == "+6281*****7890"


def test_an_email_keeps_two_characters_and_the_domain() -> None:
    assert mask("siti.aminah@example.com") == "si***@example.com"


def test_a_name_keeps_only_its_first_letter() -> None:
    assert mask("SITI AMINAH") == "S**********"


def test_nested_personal_values_are_masked_and_the_rest_is_kept() -> None:
    event = {"event": "appended", "stream_id": "registration-ab", "payload": {"nik": "3201014508900001", "category": "BPU", "contacts": [{"email": "a.b@example.com"}]}}
    assert mask_personal(event) == {"event": "appended", "stream_id": "registration-ab", "payload": {"nik": "3201********0001", "category": "BPU", "contacts": [{"email": "a.***@example.com"}]}}
