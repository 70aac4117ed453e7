"""OTP cryptography: CSPRNG codes, bound HMACs compared in constant time, AES-256-GCM sealing for delivery."""

from __future__ import annotations

import base64
import secrets
from collections import Counter

import pytest

from jmo_contracts.identity import OtpDeliveryRequested
from jmo_identity.adapters.crypto import code_hmac, codes_match, generate_code
from jmo_runtime.sealing import SealedCodeError, decode_key, open_code, seal_code

pytestmark = pytest.mark.unit

PARTICIPANT = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
OTHER_PARTICIPANT = "0123456789abcdef0123456789abcdef"
OTP = "9e8d7c6b5a4f4e3d8c2b1a0f9e8d7c6b"
OTHER_OTP = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


# --- Codes --------------------------------------------------------------------------------------


def test_codes_are_six_digits_by_default_and_keep_their_leading_zeros() -> None:
    codes = [generate_code() for _ in range(2000)]
    assert all(len(c) == 6 and c.isascii() and c.isdigit() for c in codes)
    # About 10 % of random 6-digit codes start with 0 (200 expected of 2,000; 120 is ~6 sigma below).
    assert sum(c.startswith("0") for c in codes) > 120


def test_codes_look_uniformly_random_over_two_thousand_draws() -> None:
    codes = [generate_code() for _ in range(2000)]
    digits = Counter("".join(codes))  # 12,000 digits, 1,200 of each expected
    assert set(digits) == set("0123456789")
    assert all(1000 < n < 1400 for n in digits.values()), digits
    assert len(set(codes)) > 1980  # collisions: ~2 expected among 2,000 draws from a million


@pytest.mark.parametrize("length", [4, 8, 10])
def test_the_code_length_is_configurable(length: int) -> None:
    assert len(generate_code(length)) == length


@pytest.mark.parametrize("length", [0, 3, 11])
def test_a_code_length_outside_four_to_ten_is_refused(length: int) -> None:
    with pytest.raises(ValueError):
        generate_code(length)


# --- HMAC -----------------------------------------------------------------------------------------


def test_the_hmac_is_sha256_hex_and_never_contains_the_code(key: bytes) -> None:
    digest = code_hmac(key, PARTICIPANT, OTP, "482913")
    assert len(digest) == 64 and all(ch in "0123456789abcdef" for ch in digest)
    assert digest == code_hmac(key, PARTICIPANT, OTP, "482913")


def test_the_same_code_hashes_differently_per_participant_per_otp_and_per_key(key: bytes) -> None:
    digests = {
        code_hmac(key, PARTICIPANT, OTP, "482913"),
        code_hmac(key, OTHER_PARTICIPANT, OTP, "482913"),
        code_hmac(key, PARTICIPANT, OTHER_OTP, "482913"),
        code_hmac(secrets.token_bytes(32), PARTICIPANT, OTP, "482913"),
        code_hmac(key, PARTICIPANT, OTP, "482914"),
    }
    assert len(digests) == 5


def test_the_right_code_matches_and_a_wrong_or_replayed_one_does_not(key: bytes) -> None:
    expected = code_hmac(key, PARTICIPANT, OTP, "012345")
    assert codes_match(key, PARTICIPANT, OTP, "012345", expected)
    assert not codes_match(key, PARTICIPANT, OTP, "12345", expected)
    assert not codes_match(key, PARTICIPANT, OTP, "012346", expected)
    assert not codes_match(key, OTHER_PARTICIPANT, OTP, "012345", expected)
    assert not codes_match(key, PARTICIPANT, OTHER_OTP, "012345", expected)
    assert not codes_match(secrets.token_bytes(32), PARTICIPANT, OTP, "012345", expected)


def test_a_malformed_expected_hash_simply_does_not_match(key: bytes) -> None:
    assert not codes_match(key, PARTICIPANT, OTP, "012345", "é" * 64)
    assert not codes_match(key, PARTICIPANT, OTP, "012345", "")


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_keys_must_be_thirty_two_bytes(size: int) -> None:
    with pytest.raises(ValueError):
        code_hmac(bytes(size), PARTICIPANT, OTP, "482913")
    with pytest.raises(ValueError):
        seal_code(bytes(size), "k", OTP, "482913")


def test_a_key_is_read_from_its_base64_text_form(key: bytes) -> None:
    assert decode_key(base64.b64encode(key).decode() + "\n") == key
    with pytest.raises(ValueError):
        decode_key("not base64!")
    with pytest.raises(ValueError):
        decode_key(base64.b64encode(bytes(16)).decode())


# --- Sealing for the notification service ----------------------------------------------------------


def test_a_sealed_code_opens_to_the_same_code_with_the_same_otp_id(key: bytes) -> None:
    sealed, key_id = seal_code(key, "notif-otp-2026-11", OTP, "004213")
    assert key_id == "notif-otp-2026-11"
    assert open_code(key, OTP, sealed) == "004213"


def test_the_sealed_form_is_nonce_ciphertext_and_tag_in_standard_base64_as_the_contract_says(key: bytes) -> None:
    sealed, key_id = seal_code(key, "notif-otp-2026-11", OTP, "482913")
    assert len(base64.b64decode(sealed, validate=True)) == 12 + 6 + 16
    event = OtpDeliveryRequested(
        participant_id=PARTICIPANT, otp_id=OTP, purpose="REGISTRATION", channel="email", destination="siti.aminah@example.com",
        destination_masked="si***@example.com", algorithm="AES-256-GCM", key_id=key_id, code_ciphertext=sealed, expires_at="2026-11-21T08:35:00Z",
    )
    assert "482913" not in event.model_dump_json()


def test_sealing_the_same_code_twice_gives_different_ciphertexts(key: bytes) -> None:
    assert seal_code(key, "k", OTP, "482913")[0] != seal_code(key, "k", OTP, "482913")[0]


def test_a_sealed_code_does_not_open_for_another_otp_id(key: bytes) -> None:
    sealed, _ = seal_code(key, "k", OTP, "482913")
    with pytest.raises(SealedCodeError):
        open_code(key, OTHER_OTP, sealed)


def test_a_sealed_code_does_not_open_with_another_key(key: bytes) -> None:
    sealed, _ = seal_code(key, "k", OTP, "482913")
    with pytest.raises(SealedCodeError):
        open_code(secrets.token_bytes(32), OTP, sealed)


@pytest.mark.parametrize("position", [0, 11, 12, 17, -1])
def test_a_tampered_sealed_code_is_refused(key: bytes, position: int) -> None:
    sealed, _ = seal_code(key, "k", OTP, "482913")
    blob = bytearray(base64.b64decode(sealed))
    blob[position] ^= 0x01
    with pytest.raises(SealedCodeError):
        open_code(key, OTP, base64.b64encode(bytes(blob)).decode())


@pytest.mark.parametrize("garbage", ["", "****", base64.b64encode(bytes(20)).decode()])
def test_something_that_is_not_a_sealed_code_is_refused(key: bytes, garbage: str) -> None:
    with pytest.raises(SealedCodeError):
        open_code(key, OTP, garbage)
