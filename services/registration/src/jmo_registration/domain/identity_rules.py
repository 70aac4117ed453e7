"""Input rules of SPEC §3.2: NIK structure, names, email, Indonesian mobile numbers. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from jmo_runtime import Rejection
from jmo_runtime.rules import check_email, normalise_name, to_e164

__all__ = ["NikFacts", "check_email", "normalise_name", "parse_nik", "to_e164"]


@dataclass(frozen=True)
class NikFacts:
    """What a structurally valid NIK says about its holder (to cross-check later)."""

    province: int
    birth_date: date
    gender: str  # "M" or "F"


def parse_nik(nik: str, today: date) -> NikFacts:
    """Digits 1-6 region (province 11-94), 7-12 birth date DDMMYY (+40 on DD for women), 13-16 serial ≠ 0000.

    A two-digit year is in this century unless that would be after ``today``.
    """
    if not (len(nik) == 16 and nik.isascii() and nik.isdigit()):
        raise Rejection("INVALID_NIK", "NIK must be exactly 16 digits")
    province = int(nik[0:2])
    if not 11 <= province <= 94:
        raise Rejection("INVALID_NIK", "NIK region code has no valid province (11-94)")
    if nik[2:6] == "0000":
        raise Rejection("INVALID_NIK", "NIK region code has no regency/district")
    if nik[12:16] == "0000":
        raise Rejection("INVALID_NIK", "NIK serial number cannot be 0000")
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    gender = "F" if day > 40 else "M"
    day = day - 40 if day > 40 else day
    year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    try:
        born = date(year, month, day)
    except ValueError:
        raise Rejection("INVALID_NIK", "NIK birth date does not exist") from None
    if born > today:
        raise Rejection("INVALID_NIK", "NIK birth date is in the future")
    return NikFacts(province=province, birth_date=born, gender=gender)
