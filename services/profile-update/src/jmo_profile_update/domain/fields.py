"""Rules for the fields a participant types during pengkinian data (SPEC §5). Pure.

Each function returns the normalised value or raises :class:`Rejection` with the reason code the
gateway shows next to the field. Phone, email and names follow the same rules as registration
(``jmo_runtime.rules``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from jmo_runtime import Rejection
from jmo_runtime.rules import check_email, normalise_name, to_e164

__all__ = ["Bank", "check_email", "check_npwp", "check_passport", "known_bank", "check_bank_account", "normalise_name", "to_e164"]

_NPWP_SEPARATORS = re.compile(r"[\s.\-]")
_PASSPORT = re.compile(r"^[A-Z0-9]{6,12}$")


def _ascii_digits(text: str) -> bool:
    # str.isdigit() also takes fullwidth, Arabic-Indic and superscript digits
    return text.isascii() and text.isdigit()


def check_npwp(npwp: str | None) -> str | None:
    """NPWP as digits: 15 (the old format, dots and dashes allowed) or 16 (the NIK-based one); None when absent."""
    if npwp is None or not npwp.strip():
        return None
    digits = _NPWP_SEPARATORS.sub("", npwp)
    if not _ascii_digits(digits) or len(digits) not in (15, 16):
        raise Rejection("INVALID_NPWP", "NPWP must have 15 or 16 digits")
    return digits


def check_passport(passport: str | None) -> str | None:
    """Passport number upper case, 6–12 letters and digits; None when absent."""
    if passport is None or not passport.strip():
        return None
    cleaned = passport.strip().upper()
    if not _PASSPORT.match(cleaned):
        raise Rejection("INVALID_PASSPORT", "passport number must be 6 to 12 letters and digits")
    return cleaned


@dataclass(frozen=True)
class Bank:
    """A bank benefits can be paid into, and the lengths of its account numbers."""

    name: str
    aliases: tuple[str, ...]
    account_lengths: tuple[int, ...]


@cache
def banks() -> dict[str, Bank]:
    """Every known bank by each name it goes by (upper case), from ``data/banks.json``."""
    raw = json.loads(resources.files("jmo_profile_update").joinpath("data/banks.json").read_text(encoding="utf-8"))
    found: dict[str, Bank] = {}
    for entry in raw["banks"]:
        bank = Bank(entry["name"], tuple(entry["aliases"]), tuple(entry["account_lengths"]))
        for name in (bank.name, *bank.aliases):
            found[name] = bank
    return found


def known_bank(name: str) -> Bank:
    """The bank called ``name`` (any case, extra spaces ignored)."""
    bank = banks().get(" ".join(name.split()).upper())
    if bank is None:
        raise Rejection("UNKNOWN_BANK", "bank is not in the list of banks benefits can be paid into")
    return bank


def check_bank_account(bank: Bank, number: str) -> str:
    """Account number as digits, of a length ``bank`` uses (spaces and dashes allowed)."""
    digits = re.sub(r"[\s-]", "", number)
    if not _ascii_digits(digits) or len(digits) not in bank.account_lengths:
        lengths = " or ".join(str(n) for n in bank.account_lengths)
        raise Rejection("INVALID_BANK_ACCOUNT", f"{bank.name} account numbers have {lengths} digits")
    return digits
