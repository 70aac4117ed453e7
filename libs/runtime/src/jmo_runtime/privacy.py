"""Masking personal data for logs and events (UU PDP No. 27/2022): show just enough to recognise."""

from __future__ import annotations

import re
from typing import Any

#: Field names whose values are personal data wherever they appear in a log event.
PERSONAL_KEYS = frozenset(
    {
        "nik", "full_name", "name", "email", "phone", "mobile", "otp", "code", "mother_maiden_name",
        "address", "npwp", "passport_number", "bank_account_number", "emergency_contact_name",
        "emergency_contact_phone", "embedding", "recipient", "destination",
    }
)
_EMAIL = re.compile(r"^([^@]{0,2})[^@]*(@.*)$")


def mask(value: Any) -> str:
    """Mask a personal value: digits keep the first 4 and last 4 (NIK ``3201********0001``),
    emails the first two characters and the domain, anything else its first letter."""
    if value is None:
        return "None"
    text = str(value)
    if m := _EMAIL.match(text):
        return f"{m.group(1)}***{m.group(2)}"
    digits = text.lstrip("+")
    if digits.isdigit() and len(digits) >= 8:
        return text[: len(text) - len(digits) + 4] + "*" * (len(digits) - 8) + digits[-4:]
    if len(text) <= 1:
        return "*"
    return text[0] + "*" * (len(text) - 1)


def mask_personal(data: Any) -> Any:
    """A copy of ``data`` with every value under a personal key masked, recursively."""
    if isinstance(data, dict):
        return {k: (mask(v) if k in PERSONAL_KEYS and not isinstance(v, (dict, list)) else mask_personal(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_personal(v) for v in data]
    return data
