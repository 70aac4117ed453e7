"""KPJ (Kartu Peserta Jamsostek) numbers for new BPU and PMI participants (SPEC §3 step 6). Pure.

A number is 11 digits: a 10-digit body whose first digit is 1-9 (no leading zero, so it survives
spreadsheets and numeric fields), then a **Luhn** check digit (the ISO/IEC 7812 algorithm of payment
cards). Luhn was chosen over mod-11 because every body gets a digit (mod-11 needs an "X" or has to
skip bodies) and it catches every single-digit typo and every transposition of neighbours except
09 ↔ 90 — the errors people make reading a card aloud or typing it.

Candidates are derived from a seed (the participant id) by SHA-256, so the same participant always
gets the same sequence: a retried activation proposes the same number again instead of a new one.
Uniqueness is not decided here: the application reserves a candidate in the store and takes the
next candidate when the reservation collides.

PU participants keep the KPJ number their employer enrolled them with (from the employer registry);
those follow the registry's own numbering, so :func:`is_valid_kpj` is for numbers this system issues.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import count

KPJ_LENGTH = 11
_BODY_LENGTH = KPJ_LENGTH - 1
_BODIES = 9 * 10 ** (_BODY_LENGTH - 1)  # 1000000000 … 9999999999
_LABEL = b"jmo-kpj-v1"


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these get doubled once the check digit is appended to their right
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def is_valid_kpj(number: str) -> bool:
    """Whether ``number`` is a KPJ number of the form this system issues: 11 ASCII digits, no
    leading zero, correct Luhn check digit."""
    if not (isinstance(number, str) and len(number) == KPJ_LENGTH and number.isascii() and number.isdigit() and number[0] != "0"):
        return False
    return luhn_check_digit(number[:-1]) == number[-1]


def kpj_candidates(seed: str) -> Iterator[str]:
    """Endless, deterministic sequence of distinct valid KPJ numbers for ``seed``; take the first
    one the store can reserve."""
    if not seed:
        raise ValueError("a KPJ seed (the participant id) is required")
    seen: set[str] = set()
    for attempt in count():
        digest = hashlib.sha256(b"\x00".join((_LABEL, seed.encode(), str(attempt).encode()))).digest()
        body = str(10 ** (_BODY_LENGTH - 1) + int.from_bytes(digest, "big") % _BODIES)
        number = body + luhn_check_digit(body)
        if number not in seen:
            seen.add(number)
            yield number
